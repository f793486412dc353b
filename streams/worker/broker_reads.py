"""What the ingest asks the broker: where a partition resumes, what lies in a gap, and
whether an earlier attempt wrote a dead letter (`streams.worker.ingest_ports.Broker`).

One reader, opened at the first question and kept: these are rare (a partition's first
record after an assignment, a gap, a pending dead-letter mark), and each must not pay for
a new connection. A failure closes it, so that the next question opens a fresh one. One
question at a time: the reader's consumer is pointed at one partition per question, and
two at once (the agent's and the seek after a rebalance) stole each other's answers until
a fetch timed out, and opened two readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka import TopicPartition

from sinks.source_partition import SourcePartition
from streams import metrics
from streams.config import KafkaConfig
from streams.core.dead_letter import SourceRecord
from streams.kafka.offsets import OffsetReader
from streams.logs import coords
from streams.worker.dead_letter_search import find_dead_letter

log = logging.getLogger(__name__)


class BrokerReads:
    def __init__(self, kafka: KafkaConfig, dlq_topic: str) -> None:
        self._kafka = kafka
        self._dlq_topic = dlq_topic
        self._reader: OffsetReader | None = None
        self._lock = asyncio.Lock()

    async def start_of(self, source: SourcePartition) -> int:
        tp = TopicPartition(source.topic, source.partition)
        async with self._open() as reader:
            committed = (await reader.committed(self._kafka.group_id, [tp]))[tp]
            if committed is not None:
                return committed
            return (await reader.log_starts([tp]))[tp]

    async def first_record_at(self, source: SourcePartition, offset: int) -> int | None:
        tp = TopicPartition(source.topic, source.partition)
        async with self._open() as reader:
            start = (await reader.log_starts([tp]))[tp]
            if start > offset:
                metrics.LOST_OFFSETS.labels(source.topic, str(source.partition)).inc(start - offset)
                log.error(
                    "%s[%d]: offsets %d-%d were deleted by the broker (retention) before "
                    "they were processed; NetSuite will not see them: publish them again "
                    "from the OMS",
                    source.topic,
                    source.partition,
                    offset,
                    start - 1,
                    extra=coords(source.topic, source.partition, offset),
                )
            found = await reader.record_at(tp, max(start, offset))
        if found is None:
            # A kept consumer keeps each partition's high watermark across seeks, so its
            # "nothing there" may be from a fetch made before the records arrived: only a
            # consumer that has fetched nothing else may say so.
            async with self._open(fresh=True) as reader:
                found = await reader.record_at(tp, max(start, offset))
        return None if found is None else found.offset

    async def find_dead_letter(self, record: SourceRecord, from_offset: int) -> int | None:
        return await find_dead_letter(self._kafka, self._dlq_topic, record, from_offset)

    @contextlib.asynccontextmanager
    async def _open(self, *, fresh: bool = False) -> AsyncIterator[OffsetReader]:
        """The kept reader (a new one when `fresh`), for one question at a time; closed on
        any failure."""
        async with self._lock:
            if fresh:
                await self.close()
            if self._reader is None:
                self._reader = await OffsetReader(self._kafka).__aenter__()
            try:
                yield self._reader
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.__aexit__(None, None, None)
