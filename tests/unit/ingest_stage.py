"""The worker's real `Ingest`, on fakes of what it steers: tables that keep unwritten and
durable values apart, a changelog writer whose flushes the test runs (and can fail), a
consumer that records seeks and pauses, and a broker that knows where partitions start.

No Kafka and no Faust stream: each test drives records in the order it wants, as Faust's
stream may deliver them, and flushes when it wants, as the writer's timer would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.models import EventKind
from sinks.feeds import ADJUSTMENT, TRANSFER, AnyFeed
from sinks.retry import Backoff
from sinks.source_partition import SourcePartition
from streams.core.dead_letter import (
    DeadLetterRecord,
    ErrorClass,
    SourceRecord,
    dead_letter_header,
)
from streams.core.decision import Rules
from streams.core.pending import SourceRegistry, SourceState
from streams.core.progress import DeadLetterMark
from streams.kafka.broker import BrokerFlavor
from streams.kafka.traits import BrokerTraits
from streams.worker.changelog_writer import ChangelogWriteFailed
from streams.worker.ingest import Ingest
from streams.worker.tables import TableProgress
from tests.factories import make_settings

COUNTS, VARIANCES = "counts", "variances"
KINDS = {COUNTS: EventKind.COUNT_APPROVED, VARIANCES: EventKind.VARIANCE_LOGGED}
FEEDS_BY_TOPIC = {COUNTS: (ADJUSTMENT,), VARIANCES: (ADJUSTMENT, TRANSFER)}
RECORD_TIME_MS = 1_709_229_600_000  # 2024-02-29T18:00:00Z, the factories' NOON_UTC


class FakeTable:
    """Durable values, and values written since the partition's last flush."""

    def __init__(self) -> None:
        self.durable: dict[Any, Any] = {}
        self.unwritten: dict[int, dict[Any, Any]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        for writes in self.unwritten.values():
            if key in writes:
                return writes[key]
        return self.durable.get(key, default)

    def put(self, key: Any, value: Any, partition: int) -> None:
        self.unwritten.setdefault(partition, {})[key] = value

    def forget_unwritten(self, partition: int) -> None:
        self.unwritten.pop(partition, None)

    def persist(self, partition: int) -> None:
        self.durable.update(self.unwritten.pop(partition, {}))

    def view(self) -> dict[Any, Any]:
        merged = dict(self.durable)
        for writes in self.unwritten.values():
            merged.update(writes)
        return merged


@dataclass
class FakeLog:
    """The changelog writer: `flush` makes a partition's writes and dead letters durable,
    as one transaction or (without transactions) dead letters after the changelog."""

    sources: SourceRegistry
    tables: tuple[FakeTable, ...]
    transactions: bool
    dlq: list[DeadLetterRecord] = field(default_factory=list)
    letters: dict[int, list[tuple[SourcePartition, int, DeadLetterRecord]]] = field(
        default_factory=dict
    )
    failed: dict[int, str] = field(default_factory=dict)
    fenced: set[int] = field(default_factory=set)
    refuse_letters: bool = False  # the DLQ refuses every record (an ACL, a deleted topic)
    flushes: int = 0
    prunes: int = 0
    waiting_bytes: int = 0  # what `pending_bytes` answers for every partition

    @property
    def dlq_end(self) -> int:
        return len(self.dlq)

    def dead_letter(
        self, partition: int, source: SourcePartition, offset: int, record: DeadLetterRecord
    ) -> None:
        self.letters.setdefault(partition, []).append((source, offset, record))

    def pending_bytes(self, partition: int) -> int:
        return self.waiting_bytes

    def note_prune(self, partition: int) -> None:
        self.prunes += 1

    def letter_queued(self, source: SourcePartition, offset: int) -> bool:
        return any((s, o) == (source, offset) for s, o, _ in self.letters.get(source.partition, []))

    def claimed(self, partition: int) -> bool:
        return partition not in self.fenced

    def fail(self, partition: int, reason: str) -> None:
        self.failed.setdefault(partition, reason)

    async def rollback(self, partition: int) -> None:
        self.letters.pop(partition, None)
        if partition not in self.fenced:
            self.failed.pop(partition, None)

    def flush(self, partition: int, *, crash: str | None = None) -> bool:
        """Flush `partition`; False (nothing marked durable) when it failed. `crash`
        stops it as a SIGKILL would: "before-letters" once the changelog batch is written,
        "after-letters" once the dead letters are too (without transactions)."""
        if partition in self.failed:
            return False
        self.flushes += 1
        floors = self.sources.save_floors(partition)
        consumed = self.sources.consumed(partition)
        letters = self.letters.pop(partition, [])
        if self.refuse_letters and letters:
            self.failed[partition] = "the DLQ refuses records"
            return False
        for table in self.tables:
            table.persist(partition)
        if crash == "before-letters":
            return False
        for source, offset, record in letters:
            self.dlq.append(record)
            state = self.sources.get(source)
            if not self.transactions and state is not None and crash is None:
                self.sources.mark_dead_letter(state, offset, DeadLetterMark(len(self.dlq) - 1))
        if crash is not None:
            return False
        self.sources.mark_durable(consumed, floors)
        return True


@dataclass
class FakeConsumer:
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    paused: set[tuple[str, int]] = field(default_factory=set)
    assignment: set[SourcePartition] = field(default_factory=set)
    rejoins: int = 0

    def assigned(self, source: SourcePartition) -> bool:
        return source in self.assignment

    async def seek(self, source: SourcePartition, offset: int) -> None:
        self.seeks.append((source.topic, source.partition, offset))

    def pause(self, source: SourcePartition) -> None:
        self.paused.add((source.topic, source.partition))

    def resume(self, source: SourcePartition) -> None:
        self.paused.discard((source.topic, source.partition))

    async def rejoin(self) -> None:
        self.rejoins += 1


@dataclass
class FakeBroker:
    log: FakeLog
    starts: dict[SourcePartition, int] = field(default_factory=dict)
    # Offsets that hold records, per source; absent: every offset does.
    records: dict[SourcePartition, set[int]] = field(default_factory=dict)
    # While set and not open, every answer waits for it: what else runs meanwhile is the
    # test's (a halt, a rebalance). `asking` counts the questions waiting.
    gate: asyncio.Event | None = None
    asking: int = 0

    async def _answer(self) -> None:
        if self.gate is not None:
            self.asking += 1
            await self.gate.wait()
            self.asking -= 1

    async def start_of(self, source: SourcePartition) -> int:
        await self._answer()
        return self.starts.get(source, 0)

    async def first_record_at(self, source: SourcePartition, offset: int) -> int | None:
        await self._answer()
        held = self.records.get(source)
        if held is None:
            return offset
        return min((o for o in held if o >= offset), default=None)

    async def find_dead_letter(self, record: SourceRecord, from_offset: int) -> int | None:
        await self._answer()
        for index in range(from_offset, len(self.log.dlq)):
            headers = self.log.dlq[index].headers
            coordinates = tuple(
                dead_letter_header(headers, name)
                for name in ("source-topic", "source-partition", "source-offset")
            )
            if coordinates == (record.topic, str(record.partition), str(record.offset)):
                return index
        return None

    async def close(self) -> None:
        pass


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: float | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FakeEvent:
    message: Message
    key: bytes | None
    value: bytes
    acked: bool = False

    def ack(self) -> bool:
        self.acked = True
        return True


class Stage:
    def __init__(self, tmp_path: Path, *, transactions: bool = True, extra: str = "") -> None:
        self.settings = make_settings(tmp_path, extra=extra)
        self.inventory_table = FakeTable()
        self.progress_table = FakeTable()
        self.sources = SourceRegistry(
            FEEDS_BY_TOPIC, durable_gate=True, progress=TableProgress(self.progress_table)
        )
        self.log = FakeLog(self.sources, (self.inventory_table, self.progress_table), transactions)
        self.consumer = FakeConsumer()
        self.broker = FakeBroker(self.log)
        self.assigned = self.consumer.assignment
        flavor = BrokerFlavor.KAFKA if transactions else BrokerFlavor.TANSU
        self.ingest = Ingest(
            rules=Rules.from_settings(self.settings),
            kinds=KINDS,
            sources=self.sources,
            inventory=self.inventory_table,
            progress=self.progress_table,
            writer=self.log,
            traits=BrokerTraits.of(flavor),
            broker=self.broker,
            consumer=self.consumer,
            max_pending_rows=self.settings.batching.max_pending_rows,
            max_dead_letter_bytes=1_000_000,
            backoff=Backoff(initial=0.01, maximum=0.02, jitter=0),
            monotonic=lambda: 0.0,
        )
        self.offsets: dict[tuple[str, int], int] = {}
        self.assign(SourcePartition(COUNTS, 0), SourcePartition(VARIANCES, 0))

    def assign(self, *sources: SourcePartition) -> None:
        self.assigned.update(sources)
        self.sources.assign(list(sources))

    def revoke(self, *sources: SourcePartition) -> None:
        self.assigned.difference_update(sources)
        self.sources.revoke(list(sources))

    def event(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = b"STORE_1",
        offset: int | None = None,
        partition: int = 0,
        headers: tuple[tuple[str, bytes], ...] = (),
        timestamp_ms: int | None = RECORD_TIME_MS,
    ) -> FakeEvent:
        """An event as Faust's stream delivers it (next offset of its partition unless
        given), not taken yet."""
        if offset is None:
            offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        stamp = None if timestamp_ms is None else timestamp_ms / 1000
        return FakeEvent(Message(topic, partition, offset, stamp, headers), key, value)

    async def send(self, topic: str, value: bytes, **options: Any) -> FakeEvent:
        """One event, taken as a batch of one."""
        event = self.event(topic, value, **options)
        await self.ingest.take_batch((event,))
        return event

    async def send_batch(self, *events: FakeEvent) -> None:
        await self.ingest.take_batch(events)

    def flush(self, partition: int = 0) -> bool:
        """As the writer's timer: a failure halts the partition."""
        flushed = self.log.flush(partition)
        if not flushed and partition in self.log.failed:
            self.ingest.failed(partition, ChangelogWriteFailed(self.log.failed[partition]))
        return flushed

    def crash(self, *sources: SourcePartition) -> None:
        """The worker dies: what it held in memory is gone, the durable rest stays."""
        for table in (self.inventory_table, self.progress_table):
            table.unwritten.clear()
        self.log.letters.clear()
        self.revoke(*sources)
        self.assign(*sources)

    @property
    def inventory(self) -> dict[Any, Any]:
        return self.inventory_table.view()

    def state(self, topic: str, partition: int = 0) -> SourceState:
        state = self.sources.get(SourcePartition(topic, partition))
        assert state is not None
        return state

    def pending(self, topic: str, feed: AnyFeed, partition: int = 0) -> list[str]:
        rows = self.state(topic, partition).batchers[feed].rows_through(10**9)
        return [getattr(r.row, "reference_no", getattr(r.row, "external_id", "")) for r in rows]

    def publish(self, topic: str, partition: int = 0) -> None:
        """As the publish loop does after a flush of every feed."""
        state = self.state(topic, partition)
        for batcher in state.batchers.values():
            batcher.drop_through(10**9)
        state.release()

    def dead_letters(self) -> list[tuple[str, str, str]]:
        """(source offset, error class, reason) of every dead letter in the DLQ."""
        return [
            (
                dead_letter_header(r.headers, "source-offset") or "",
                dead_letter_header(r.headers, "error-class") or "",
                dead_letter_header(r.headers, "error") or "",
            )
            for r in self.log.dlq
        ]

    @property
    def dead(self) -> list[tuple[ErrorClass, str]]:
        """(error class, reason) of every dead letter, sent or waiting for its flush."""
        queued = [record for letters in self.log.letters.values() for _, _, record in letters]
        return [
            (
                ErrorClass(dead_letter_header(r.headers, "error-class") or ""),
                dead_letter_header(r.headers, "error") or "",
            )
            for r in [*self.log.dlq, *queued]
        ]
