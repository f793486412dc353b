"""Writing dead letters to the DLQ topic, and finding one that an earlier owner wrote.

The pipeline decides *whether* to send (at most once per source event, through the
partition's `Progress`); this module only sends and searches. Sends wait for the broker's
acknowledgement, because the acknowledged offset is what the progress entry records.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.config import KafkaConfig
from streams.core.dead_letter import HEADER_PREFIX, DeadLetter, SourceRecord
from streams.kafka.broker import DLQ_MAX_MESSAGE_BYTES, client_options
from streams.kafka.offsets import OffsetReader

log = logging.getLogger(__name__)

_COORDINATES = tuple(HEADER_PREFIX + name for name in ("source-topic", "source-partition"))
_OFFSET = HEADER_PREFIX + "source-offset"


def is_dead_letter_of(headers: list[tuple[str, bytes]], record: SourceRecord) -> bool:
    """Whether DLQ headers name `record`'s coordinates."""
    found = dict(headers)
    wanted = (record.topic.encode(), str(record.partition).encode())
    return (
        tuple(found.get(name) for name in _COORDINATES) == wanted
        and found.get(_OFFSET) == str(record.offset).encode()
    )


class KafkaDeadLetters:
    """The DLQ topic (one partition) as the pipeline's `DeadLetterSink`."""

    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self._kafka = kafka
        self._tp = TopicPartition(topic, 0)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._end = 0  # no DLQ record that this process knows of is at or past this

    async def start(self) -> None:
        """Start the producer once; concurrent callers wait for the first."""
        if self._producer is not None:
            return
        async with self._starting:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                **client_options(self._kafka), acks="all", max_request_size=DLQ_MAX_MESSAGE_BYTES
            )
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def known_end(self) -> int:
        return self._end

    async def send(self, letter: DeadLetter) -> int:
        if self._producer is None:
            raise RuntimeError("the dead-letter writer is not started")
        record = letter.record
        meta = await self._producer.send_and_wait(
            self._tp.topic,
            record.value,
            key=record.key,
            partition=self._tp.partition,
            headers=letter.headers(),
        )
        offset: int = meta.offset
        self._end = max(self._end, offset + 1)
        return offset

    async def find(self, record: SourceRecord, from_offset: int) -> int | None:
        """The DLQ offset of `record`'s dead letter at or after `from_offset`, if any."""
        async with OffsetReader(self._kafka) as reader:
            end = (await reader.high_watermarks([self._tp]))[self._tp]
            start = max(from_offset, (await reader.log_starts([self._tp]))[self._tp])
            log.info(
                "looking for an earlier dead letter of %s[%d]@%d in %s offsets %d-%d",
                record.topic,
                record.partition,
                record.offset,
                self._tp.topic,
                start,
                end - 1,
            )
            for message in await reader.records(self._tp, start, end):
                headers = [(str(k), bytes(v or b"")) for k, v in message.headers or ()]
                if is_dead_letter_of(headers, record):
                    self._end = max(self._end, message.offset + 1)
                    return int(message.offset)
        self._end = max(self._end, end)
        return None
