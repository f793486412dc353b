"""ChangelogWriter against a real broker: records land in order, events become ackable
only once the broker has their table writes, a failed flush acks nothing until the
partition is rolled back, and where the broker has transactions a newer owner of a
partition fences the older one, whose writes never reach a committed reader."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sinks.feeds import ADJUSTMENT
from sinks.source_partition import SourcePartition
from streams.config import KafkaConfig
from streams.core.dead_letter import DeadLetterRecord
from streams.core.pending import SourceRegistry, SourceState
from streams.devstack.local_broker import LocalBroker
from streams.kafka.traits import BrokerTraits
from streams.worker.changelog_writer import (
    ChangelogWriteFailed,
    ChangelogWriter,
    Fenced,
    Persisted,
)
from tests.fixtures.broker import broker, kafka_broker, traits_of
from tests.unit.test_pending import Event

__all__ = ["broker", "kafka_broker"]

SOURCE = SourcePartition("inputs", 0)
CHANGELOG = "app-inventory-changelog"
DLQ = "app-dlq"

Record = tuple[bytes | None, bytes | None]


async def read_all(bootstrap: str, topic: str, partition: int) -> list[Record]:
    """Every committed data record of the partition (markers and aborted ones skipped)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[Record] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records += [(r.key, r.value) for r in batch.get(tp, []) if r.key != END]
        return records
    finally:
        await consumer.stop()


END = b'"~changelog-end~"'  # what a claim appends where the broker has transactions


async def stage(
    bootstrap: str, traits: BrokerTraits, request_timeout_ms: int = 40_000
) -> tuple[SourceState, ChangelogWriter]:
    """A changelog topic, one owned source partition, and a writer that claimed it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(CHANGELOG, 2, 1), NewTopic(DLQ, 1, 1)])
    await admin.close()
    return await claimed(bootstrap, traits, request_timeout_ms)


async def claimed(
    bootstrap: str, traits: BrokerTraits, request_timeout_ms: int = 40_000
) -> tuple[SourceState, ChangelogWriter]:
    registry = SourceRegistry({"inputs": (ADJUSTMENT,)}, durable_gate=True)
    registry.assign([SOURCE])
    writer = ChangelogWriter(
        KafkaConfig(bootstrap=bootstrap),
        registry,
        traits,
        dlq_topic=DLQ,
        request_timeout_ms=request_timeout_ms,
        linger_seconds=3600,  # each test flushes when it means to
    )
    writer.register(CHANGELOG, lambda tp, records: None)
    await writer.claim({0, 1})
    state = registry.get(SOURCE)
    assert state is not None
    state.start_at(0)
    return state, writer


async def flush_scenario(bootstrap: str, traits: BrokerTraits) -> None:
    state, writer = await stage(bootstrap, traits)
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
        await writer.flush(1)
        assert acked == []  # partition 1's flush says nothing about partition 0's events
        await writer.flush(0)
        assert acked == [0, 1, 2]
        assert [(p, tag) for p, _, tag in sorted(persisted, key=str)] == [
            (0, 0),
            (0, 1),
            (0, 2),
            (1, "tag"),
        ]
        expected = [(f'"k{n}"'.encode(), f"{n}".encode()) for n in range(3)]
        assert await read_all(bootstrap, CHANGELOG, 0) == expected
        assert await read_all(bootstrap, CHANGELOG, 1) == [(b'"other"', None)]
    finally:
        await writer.stop()


async def overlap_scenario(bootstrap: str, traits: BrokerTraits) -> None:
    state, writer = await stage(bootstrap, traits)
    acked: list[int] = []
    try:
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"a"', b"0")
        first = asyncio.create_task(writer.flush(0))
        await asyncio.sleep(0)  # the first flush has taken what was appended so far
        state.record(1, Event(1, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"b"', b"1")
        await first
        assert acked == [0]  # event 1's write was not in that flush
        await writer.flush(0)
        assert acked == [0, 1]
        assert await read_all(bootstrap, CHANGELOG, 0) == [(b'"a"', b"0"), (b'"b"', b"1")]
    finally:
        await writer.stop()


async def folding_scenario(bootstrap: str, traits: BrokerTraits) -> None:
    state, writer = await stage(bootstrap, traits)
    persisted: list[object] = []
    writer.register(CHANGELOG, lambda tp, records: persisted.extend(r.tag for r in records))
    acked: list[int] = []
    try:
        # Forty events touching one position and two touching another, in one flush.
        for offset in range(42):
            state.record(offset, Event(offset, acked), {}, now=0)
            key = b'"STORE_1/10"' if offset < 40 else b'"STORE_1/11"'
            writer.append(CHANGELOG, 0, key, f'{{"events_applied": {offset}}}'.encode(), offset)
        await writer.flush(0)
        assert await read_all(bootstrap, CHANGELOG, 0) == [
            (b'"STORE_1/10"', b'{"events_applied": 39}'),
            (b'"STORE_1/11"', b'{"events_applied": 41}'),
        ]
        assert persisted == [39, 41]  # each table learns of its latest write only
        assert acked == list(range(42))
    finally:
        await writer.stop()


def test_a_flush_writes_each_key_once_with_its_latest_value(broker: LocalBroker) -> None:
    asyncio.run(folding_scenario(broker.bootstrap, traits_of(broker)))


def test_a_flush_writes_in_order_and_only_then_releases_the_events(
    broker: LocalBroker,
) -> None:
    asyncio.run(flush_scenario(broker.bootstrap, traits_of(broker)))


def test_writes_appended_during_a_flush_hold_their_events_until_the_next(
    broker: LocalBroker,
) -> None:
    asyncio.run(overlap_scenario(broker.bootstrap, traits_of(broker)))


async def failure_scenario(broker: LocalBroker) -> None:
    state, writer = await stage(broker.bootstrap, traits_of(broker), request_timeout_ms=1_000)
    acked: list[int] = []
    try:
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"a"', b"0")
        broker.stop()
        with pytest.raises(ChangelogWriteFailed):
            await writer.flush(0)
        state.record(1, Event(1, acked), {}, now=0)  # no writes, yet after a lost one
        with pytest.raises(ChangelogWriteFailed):
            await writer.flush(0)
        with pytest.raises(ChangelogWriteFailed):
            writer.append(CHANGELOG, 0, b'"b"', b"1")
        assert acked == []
    finally:
        await writer.stop()


def test_after_a_failed_flush_nothing_is_acked_until_the_partition_is_rolled_back(
    broker: LocalBroker,
) -> None:
    asyncio.run(failure_scenario(broker))


async def fencing_scenario(bootstrap: str, traits: BrokerTraits) -> None:
    zombie_state, zombie = await stage(bootstrap, traits)
    acked: list[int] = []
    try:
        zombie_state.record(0, Event(0, acked), {}, now=0)
        zombie.append(CHANGELOG, 0, b'"k"', b"zombie-1")
        await zombie.flush(0)
        # The zombie pauses; the partition moves, and its new owner claims it.
        _, owner = await claimed(bootstrap, traits)
        try:
            owner.append(CHANGELOG, 0, b'"k"', b"owner")
            await owner.flush(0)
            # The zombie wakes up: nothing it writes lands.
            zombie_state.record(1, Event(1, acked), {}, now=0)
            zombie.append(CHANGELOG, 0, b'"k"', b"zombie-2")
            zombie.dead_letter(0, SOURCE, 1, DeadLetterRecord(b"key", b"dead", ()))
            with pytest.raises(Fenced):
                await zombie.flush(0)
            assert not zombie.claimed(0)
            assert acked == [0]
        finally:
            await owner.stop()
        committed = await read_all(bootstrap, CHANGELOG, 0)
        assert committed == [(b'"k"', b"zombie-1"), (b'"k"', b"owner")]
        assert await read_all(bootstrap, DLQ, 0) == []
    finally:
        await zombie.stop()


def test_a_newer_owner_fences_the_old_one_and_committed_readers_never_see_its_writes(
    kafka_broker: LocalBroker,
) -> None:
    asyncio.run(fencing_scenario(kafka_broker.bootstrap, traits_of(kafka_broker)))


async def dead_letter_scenario(bootstrap: str, traits: BrokerTraits) -> None:
    state, writer = await stage(bootstrap, traits)
    acked: list[int] = []
    try:
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"progress"', b"sent")
        writer.dead_letter(0, SOURCE, 0, DeadLetterRecord(b"key", b"x" * 2_000_000, ()))
        with pytest.raises(ChangelogWriteFailed, match=r"RecordTooLarge|too large|MessageSize"):
            await writer.flush(0)  # the DLQ keeps the broker's 1 MB default here
        assert acked == []
        assert not writer.claimed(0)  # only a new assignment writes it again
        await writer.release({0, 1})
        await writer.claim({0, 1})
        state.rewind(0)
        state.record(0, Event(0, acked), {}, now=0)
        writer.append(CHANGELOG, 0, b'"progress"', b"sent")
        writer.dead_letter(0, SOURCE, 0, DeadLetterRecord(b"key", b"dead", ()))
        await writer.flush(0)
        assert acked == [0]
        # The refused transaction left nothing; the second wrote both, together.
        assert await read_all(bootstrap, CHANGELOG, 0) == [(b'"progress"', b"sent")]
        assert await read_all(bootstrap, DLQ, 0) == [(b"key", b"dead")]
    finally:
        await writer.stop()


def test_a_dead_letter_the_broker_refuses_takes_its_whole_transaction_with_it(
    kafka_broker: LocalBroker,
) -> None:
    asyncio.run(dead_letter_scenario(kafka_broker.bootstrap, traits_of(kafka_broker)))
