"""Finding a dead letter that an earlier attempt may have written.

Without transactions (Tansu), a dead letter is sent after a durable *pending* mark
(`streams.core.progress`); a successor that finds such a mark looks for the record in the
DLQ from the mark's offset on before sending it again. Marks left by earlier versions of
variance-sync on Apache Kafka are found the same way.
"""

from __future__ import annotations

import logging

from aiokafka import TopicPartition

from streams.config import KafkaConfig
from streams.core.dead_letter import HEADER_PREFIX, SourceRecord
from streams.kafka.offsets import OffsetReader
from streams.logs import coords

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


async def find_dead_letter(
    kafka: KafkaConfig, topic: str, record: SourceRecord, from_offset: int
) -> int | None:
    """The DLQ offset of `record`'s dead letter at or after `from_offset`, if any."""
    tp = TopicPartition(topic, 0)
    async with OffsetReader(kafka) as reader:
        end = (await reader.high_watermarks([tp]))[tp]
        start = max(from_offset, (await reader.log_starts([tp]))[tp])
        log.info(
            "looking for an earlier dead letter of %s[%d]@%d in %s offsets %d-%d",
            record.topic,
            record.partition,
            record.offset,
            topic,
            start,
            end - 1,
            extra=coords(record.topic, record.partition, record.offset),
        )
        for message in await reader.records(tp, start, end):
            headers = [(str(k), bytes(v or b"")) for k, v in message.headers or ()]
            if is_dead_letter_of(headers, record):
                return int(message.offset)
    return None
