"""Changelog flushes that fail: one cut short marks nothing durable, and one holding a
record too large for any batch fails before its transaction, its producer kept.

A stop (SIGTERM) or a release cancels a flush in flight: its writes never reach the
changelog. The final flush that follows found the log clean and its waiting writes empty,
and marked every consumed event durable, the cut flush's too; at a stop they were then
acked, and Faust commits acked offsets as its consumer stops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sinks.feeds import ADJUSTMENT
from sinks.source_partition import SourcePartition
from streams.config import KafkaConfig
from streams.core.dead_letter import DeadLetterRecord
from streams.core.pending import SourceRegistry
from streams.kafka.broker import BrokerFlavor
from streams.kafka.traits import BrokerTraits
from streams.worker import changelog_producers
from streams.worker.changelog_writer import LINGER_SECONDS, ChangelogWriteFailed, ChangelogWriter
from tests.unit.test_pending import Event
from tests.unit.test_written_through_table import UnansweredProducer, no_ends

COUNTS = "counts"


async def claimed(
    monkeypatch: pytest.MonkeyPatch, producer: type, sources: SourceRegistry, **options: Any
) -> ChangelogWriter:
    """A writer on Kafka's path, its producers `producer`, partition 0 claimed."""
    monkeypatch.setattr(changelog_producers, "AIOKafkaProducer", producer)
    monkeypatch.setattr(changelog_producers, "end_partitions", no_ends)
    writer = ChangelogWriter(KafkaConfig(), sources, BrokerTraits.of(BrokerFlavor.KAFKA), **options)
    await writer.claim({0})
    return writer


async def test_a_stop_that_cuts_a_flush_short_acks_none_of_its_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = SourceRegistry({COUNTS: (ADJUSTMENT,)}, durable_gate=True)
    writer = await claimed(monkeypatch, UnansweredProducer, sources)
    writer.register(f"{COUNTS}-changelog", lambda tp, records: None)
    state = sources.adopt(SourcePartition(COUNTS, 0))
    state.start_at(0)
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    writer.append(f"{COUNTS}-changelog", 0, b'"k"', b"1")
    await asyncio.sleep(LINGER_SECONDS * 4)  # its flush is in flight, never answered
    await writer.stop()
    state.release()
    assert acked == []
    assert not state.durable_past(0)


class Transactions(UnansweredProducer):
    begun = 0

    async def begin_transaction(self) -> None:
        Transactions.begun += 1


async def test_a_record_too_large_for_any_batch_fails_before_its_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broken producer would need a new assignment: the whole group would rejoin, again
    # and again, for one dead letter that can never fit.
    sources = SourceRegistry({COUNTS: (ADJUSTMENT,)}, durable_gate=True)
    writer = await claimed(
        monkeypatch,
        Transactions,
        sources,
        dlq_topic="dlq",
        dlq_max_bytes=1_000,
        linger_seconds=3600,
    )
    source = SourcePartition(COUNTS, 0)
    writer.dead_letter(0, source, 0, DeadLetterRecord(b"k", b"x" * 5_000, ()))
    with pytest.raises(ChangelogWriteFailed, match="fits no batch"):
        await writer.flush(0)
    assert Transactions.begun == 0
    assert writer.claimed(0)  # a halt of its own, no rejoin
    await writer.stop()
