"""ChangelogWriter against a real broker: records land in order, and events become
ackable only once the broker has their table writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sinks.feeds import Feed
from sinks.source_partition import SourcePartition
from streams.config import KafkaConfig
from streams.core.pending import SourceRegistry, SourceState
from streams.devstack.broker import LocalBroker
from streams.worker.changelog_writer import ChangelogWriteFailed, ChangelogWriter, Persisted
from tests.fixtures.broker import broker
from tests.unit.test_pending import Event

__all__ = ["broker"]

SOURCE = SourcePartition("inputs", 0)
CHANGELOG = "app-inventory-changelog"


Record = tuple[bytes | None, bytes | None]


async def read_all(bootstrap: str, partition: int, count: int) -> list[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(CHANGELOG, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Record] = []
        while len(records) < count:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            records += [(r.key, r.value) for r in batch.get(tp, [])]
        return records
    finally:
        await consumer.stop()


async def stage(
    bootstrap: str, request_timeout_ms: int = 40_000
) -> tuple[SourceState, ChangelogWriter]:
    """A changelog topic, one owned source partition, and a started writer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(CHANGELOG, 2, 1)])
    await admin.close()
    registry = SourceRegistry({"inputs": (Feed.ADJUSTMENT,)}, durable_gate=True)
    registry.assign([SOURCE])
    writer = ChangelogWriter(
        KafkaConfig(bootstrap=bootstrap), registry, request_timeout_ms=request_timeout_ms
    )
    await writer.start()
    state = registry.get(SOURCE)
    assert state is not None
    return state, writer


async def flush_scenario(bootstrap: str) -> None:
    state, writer = await stage(bootstrap)
    persisted: list[tuple[int, int, object]] = []

    def on_persisted(tp: TopicPartition, records: Sequence[Persisted]) -> None:
        persisted.extend((tp.partition, record.offset, record.tag) for record in records)

    writer.register(CHANGELOG, on_persisted)
    acked: list[int] = []
    try:
        for offset in range(3):
            state.record(offset, Event(offset, acked), {}, now=0)
            writer.append(CHANGELOG, 0, f'"k{offset}"'.encode(), f"{offset}".encode(), offset)
        writer.append(CHANGELOG, 1, b'"other"', None, "tag")
        assert acked == []  # nothing is durable yet
        assert persisted == []  # nor is any record handed back to its table
        await writer.flush()
        assert acked == [0, 1, 2]
        assert sorted(persisted, key=str) == [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, "tag")]
        expected = [(f'"k{n}"'.encode(), f"{n}".encode()) for n in range(3)]
        assert await read_all(bootstrap, 0, 3) == expected
        assert await read_all(bootstrap, 1, 1) == [(b'"other"', None)]
    finally:
        await writer.stop()


async def overlap_scenario(bootstrap: str) -> None:
    state, writer = await stage(bootstrap)
    acked: list[int] = []
    try:
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"a"', b"0")
        first = asyncio.create_task(writer.flush())
        await asyncio.sleep(0)  # the first flush has taken what was appended so far
        state.record(1, Event(1, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"b"', b"1")
        await first
        assert acked == [0]  # event 1's write was not in that flush
        await writer.flush()
        assert acked == [0, 1]
        assert await read_all(bootstrap, 0, 2) == [(b'"a"', b"0"), (b'"b"', b"1")]
    finally:
        await writer.stop()


def test_a_flush_writes_in_order_and_only_then_releases_the_events(
    broker: LocalBroker,
) -> None:
    asyncio.run(flush_scenario(broker.bootstrap))


def test_writes_appended_during_a_flush_hold_their_events_until_the_next(
    broker: LocalBroker,
) -> None:
    asyncio.run(overlap_scenario(broker.bootstrap))


async def failure_scenario(broker: LocalBroker) -> None:
    state, writer = await stage(broker.bootstrap, request_timeout_ms=1_000)
    acked: list[int] = []
    try:
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"a"', b"0")
        broker.stop()
        with pytest.raises(ChangelogWriteFailed):
            await writer.flush()
        state.record(1, Event(1, acked), {}, now=0)  # no writes, yet after a lost one
        with pytest.raises(ChangelogWriteFailed):
            await writer.flush()
        assert acked == []
    finally:
        await writer.stop()


def test_after_a_failed_flush_no_event_is_ever_acked(broker: LocalBroker) -> None:
    asyncio.run(failure_scenario(broker))
