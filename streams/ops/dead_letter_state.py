"""The DLQ as it stands: every dead letter and the re-drive ledger, read to the end.

`variance-sync dlq` lists, shows and re-drives from it; the fold (`streams.ops.fold`)
skips every source record it holds, since the worker dead-lettered those, whatever
today's config would decide.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from streams.kafka.broker import BrokerError, TopicNames
from streams.kafka.offsets import OffsetReader
from streams.ops.dead_letter_reader import DLQState, Redrive, history, parse_record, parse_redrive


async def read_state(reader: OffsetReader, topics: TopicNames) -> DLQState:
    """Every DLQ record up to the high watermark, and the re-drive ledger."""
    existing = set(await reader.topics())
    if topics.dlq not in existing:
        # Reading a missing topic could auto-create it with the wrong partition count.
        raise BrokerError(f"no topic {topics.dlq} yet (a worker creates it when it starts)")
    partitions = await reader.partitions(topics.dlq)
    if len(partitions) != 1:
        raise BrokerError(
            f"{topics.dlq} has {len(partitions)} partitions; the dlq commands name records "
            "by offset and need the single partition that a worker creates"
        )
    records = tuple(
        parse_record(r.offset, r.timestamp, r.key, r.value, r.headers)
        for r in await read_partition(reader, partitions[0])
    )
    ledger: list[Redrive] = []
    if topics.dlq_redrives in existing:
        for tp in await reader.partitions(topics.dlq_redrives):
            for message in await read_partition(reader, tp):
                redrive = parse_redrive(message.key, message.value)
                if redrive is not None:
                    ledger.append(redrive)
    return DLQState(topics.dlq, records, history(ledger, topics.dlq))


async def read_partition(reader: OffsetReader, tp: TopicPartition) -> list[Any]:
    """The records from the log start to the high watermark that Fetch reports (never
    ListOffsets' end offset, which is wrong on Tansu)."""
    end = (await reader.high_watermarks([tp]))[tp]
    start = (await reader.log_starts([tp]))[tp]
    return await reader.records(tp, start, end)


def dead_lettered(state: DLQState) -> set[tuple[str, int, int]]:
    """The source coordinates (topic, partition, offset) of every dead letter."""
    return {
        (r.source_topic, r.source_partition, r.source_offset)
        for r in state.records
        if r.source_topic is not None
        and r.source_partition is not None
        and r.source_offset is not None
    }
