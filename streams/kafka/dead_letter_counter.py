"""Keeps a `DeadLetterTally` up to date by reading the DLQ and re-drive topics forward.

Each call reads on from where the last one stopped, at most `step` records per partition,
so a flood of dead letters costs a bounded amount of work per monitor tick. A worker
starts from each topic's log start: records that retention removed later stay counted
until the worker restarts.
"""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.core.dead_letter_tally import DeadLetterTally
from streams.kafka.broker import BrokerError, TopicNames
from streams.kafka.offsets import OffsetReader

STEP = 5000


class DeadLetterCounter:
    def __init__(self, topics: TopicNames, step: int = STEP) -> None:
        self._topics = topics
        self._step = step
        self._next: dict[TopicPartition, int] = {}
        self.tally = DeadLetterTally()

    async def catch_up(self, reader: OffsetReader) -> None:
        for topic in (self._topics.dlq, self._topics.dlq_redrives):
            try:
                # It lists topics first, so a missing one is never auto-created.
                partitions = await reader.partitions(topic)
            except BrokerError:
                continue  # not created yet: nothing to count
            for tp in partitions:
                await self._read(reader, tp)

    async def _read(self, reader: OffsetReader, tp: TopicPartition) -> None:
        # Past the log start: retention may have removed what we had not read yet.
        start = max(self._next.get(tp, 0), (await reader.log_starts([tp]))[tp])
        end = min((await reader.high_watermarks([tp]))[tp], start + self._step)
        if end <= start:
            self._next[tp] = start
            return
        for record in await reader.records(tp, start, end):
            if tp.topic == self._topics.dlq:
                self.tally.add(record.headers or ())
            else:
                self.tally.add_redrive(record.key)
        self._next[tp] = end
