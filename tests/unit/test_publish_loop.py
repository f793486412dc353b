"""The publish loop's writers and ack decisions, on a local folder and a driven clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from sinks.exceptions import (
    DestinationRefused,
    DestinationUnavailable,
    HostKeyMismatch,
    SinkError,
)
from sinks.feed_publisher import FeedPublisher, PublisherOptions
from sinks.feeds import ADJUSTMENT, FEEDS, TRANSFER, AdjustmentRow, AnyFeed, TransferRow
from sinks.layout import ensure_layout
from sinks.local import LocalDestination
from sinks.partition_writer import WriterState
from sinks.retry import Backoff
from sinks.rows import PendingRow
from sinks.seal_ledger import BatchLedger
from sinks.source_partition import SourcePartition
from streams.core.batching import WindowPolicy
from streams.core.pending import SourceRegistry, SourceState
from streams.worker.publish_loop import PublishLoop
from streams.worker.web import pipeline
from tests.unit.test_pending import Event

COUNTS, VARIANCES = "hotwax.inventory.count-approved", "hotwax.inventory.variance-logged"
AT = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)


class Refusing(LocalDestination):
    """Refuses every write for source partition 0 (of `feeds`) while `error` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.error: SinkError | None = None
        self.feeds = tuple(FEEDS)
        self.refused = ""  # only paths that hold this, when set

    async def write(self, path: str, data: bytes) -> None:
        ours = any(feed.name in path for feed in self.feeds) and self.refused in path
        if self.error is not None and ours and ("/p0/" in path or "-p0_" in path):
            raise self.error
        await super().write(path, data)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def adjustment(offset: int) -> PendingRow:
    row = AdjustmentRow(f"R{offset}", "927", "3410", -1, "254", date(2024, 2, 29), "m", "1")
    return PendingRow(offset, row, AT, "v1")


def transfer(offset: int) -> PendingRow:
    row = TransferRow(f"VL-{offset}", "3410", 1, "254", "1099", date(2024, 2, 29), "m", "1")
    return PendingRow(offset, row, AT, "v1")


class Stage:
    def __init__(self, tmp_path: Path, dest: Refusing | None = None) -> None:
        self.dest = dest or Refusing(tmp_path)
        self.clock = Clock()
        self.sources = SourceRegistry({COUNTS: (ADJUSTMENT,), VARIANCES: (ADJUSTMENT, TRANSFER)})
        self.sources.assign(
            [SourcePartition(COUNTS, 0), SourcePartition(COUNTS, 1), SourcePartition(VARIANCES, 0)]
        )
        for state in self.sources:
            state.start_at(0)
        self.loop = PublishLoop(
            self.sources,
            self.dest,
            PublisherOptions(file_prefix="acme", max_rows=100),
            WindowPolicy(window_seconds=60, max_rows=100),
            Backoff(initial=1, maximum=30, jitter=0),
            monotonic=self.clock,
        )
        self.acked: dict[SourcePartition, list[int]] = {}

    def state(self, topic: str, partition: int) -> SourceState:
        state = self.sources.get(SourcePartition(topic, partition))
        assert state is not None
        return state

    def consume(self, topic: str, partition: int, offset: int, *rows: PendingRow) -> None:
        state = self.state(topic, partition)
        acked = self.acked.setdefault(state.source, [])
        by_feed: dict[AnyFeed, list[PendingRow]] = {}
        for row in rows:
            feed = TRANSFER if isinstance(row.row, TransferRow) else ADJUSTMENT
            by_feed.setdefault(feed, []).append(row)
        state.record(offset, Event(offset, acked), by_feed, self.clock.now)

    async def tick(self) -> None:
        """A tick that closes every open batch, then the flushes it started."""
        await self.loop.tick(force=True)
        await self.loop.settle()

    def writer_state(self, feed: AnyFeed, topic: str, partition: int) -> str:
        return next(
            w.state
            for w in self.loop.writers()
            if (w.feed, w.topic, w.partition) == (feed.name, topic, partition)
        )


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    return Stage(tmp_path)


async def test_a_published_batch_acks_exactly_the_events_it_covers(stage: Stage) -> None:
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 0, 1)  # no rows: waits behind offset 0
    stage.consume(COUNTS, 0, 2, adjustment(2))
    assert stage.acked[SourcePartition(COUNTS, 0)] == []
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0, 1, 2]
    assert stage.state(COUNTS, 0).pending_rows == 0


async def test_an_event_waits_for_every_feed_that_holds_a_row_at_or_below_it(
    stage: Stage,
) -> None:
    stage.dest.error = DestinationRefused("adjustments are refused")
    stage.dest.feeds = (ADJUSTMENT,)
    stage.consume(VARIANCES, 0, 0, adjustment(0))
    stage.consume(VARIANCES, 0, 1, transfer(1))
    await stage.tick()
    # The transfer is published, yet nothing is acked: offset 0's adjustment still waits.
    assert stage.writer_state(TRANSFER, VARIANCES, 0) == "idle"
    assert stage.writer_state(ADJUSTMENT, VARIANCES, 0) == "retrying"
    assert stage.acked[SourcePartition(VARIANCES, 0)] == []
    stage.dest.error = None
    stage.clock.now += 2
    await stage.tick()
    assert stage.acked[SourcePartition(VARIANCES, 0)] == [0, 1]


async def test_a_retriable_failure_parks_only_its_writer(stage: Stage) -> None:
    stage.dest.error = DestinationRefused("disk full")
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 1, 0, adjustment(0))
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 1)] == [0]
    assert stage.acked[SourcePartition(COUNTS, 0)] == []
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == WriterState.RETRYING.value
    assert stage.loop.parked() == []
    # Within its backoff the failed writer does not try; the other goes on publishing.
    writes = len(list(stage.dest.root.rglob("*.csv")))
    stage.consume(COUNTS, 1, 1, adjustment(1))
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 1)] == [0, 1]
    assert len(list(stage.dest.root.rglob("*.csv"))) == writes + 1
    stage.dest.error = None
    stage.clock.now += 1.5
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0]
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "idle"


async def test_a_non_retriable_failure_parks_its_writer_and_says_so(stage: Stage) -> None:
    stage.dest.error = HostKeyMismatch("not the pinned key")
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 1, 0, adjustment(0))
    await stage.tick()
    parked = stage.loop.parked()
    assert [(w.topic, w.partition, w.state) for w in parked] == [(COUNTS, 0, "parked")]
    assert parked[0].error is not None
    assert "HostKeyMismatch" in parked[0].error
    assert stage.acked[SourcePartition(COUNTS, 1)] == [0]
    # Tried again only after the slowest backoff, and then it recovers.
    stage.dest.error = None
    stage.clock.now += 29
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == []
    stage.clock.now += 2
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0]
    assert stage.loop.parked() == []


@pytest.mark.parametrize(
    ("error", "parks"),
    [(DestinationRefused("permission denied"), True), (DestinationUnavailable("down"), False)],
)
async def test_a_refusal_that_lasts_parks_its_writer_and_an_outage_does_not(
    stage: Stage, error: SinkError, parks: bool
) -> None:
    park_after = PublisherOptions(file_prefix="acme", max_rows=100).park_after_seconds
    stage.dest.error = error
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 1, 0, adjustment(0))
    await stage.tick()
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "retrying"
    stage.clock.now += park_after - 1
    await stage.tick()
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "retrying"
    stage.clock.now += 31
    await stage.tick()
    expected = "parked" if parks else "retrying"
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == expected
    assert stage.writer_state(ADJUSTMENT, COUNTS, 1) == "idle"
    assert stage.acked[SourcePartition(COUNTS, 0)] == []
    # The cause gone, the next retry publishes and the writer is a plain one again.
    stage.dest.error = None
    stage.clock.now += 31
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0]
    assert stage.loop.parked() == []


async def test_floors_rise_once_events_are_acked_for_the_next_flush_to_write(
    stage: Stage,
) -> None:
    state = stage.state(COUNTS, 0)
    stage.sources.progress_of(state)
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 0, 1)
    await stage.tick()
    assert state.progress is not None
    assert state.progress.floor == 2
    assert stage.sources.save_floors(0) == {state.source: 2}


class Stalling(Refusing):
    """Holds every write for source partition 0 until `go` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.go = asyncio.Event()
        self.held = 0  # writes waiting for `go` now

    async def write(self, path: str, data: bytes) -> None:
        if "-p0_" in path and not self.go.is_set():
            self.held += 1
            await self.go.wait()
            self.held -= 1
        await super().write(path, data)


async def test_a_writer_stuck_on_a_slow_server_holds_up_no_other_partition(
    tmp_path: Path,
) -> None:
    stalling = Stalling(tmp_path)
    stage = Stage(tmp_path, stalling)
    for window in range(3):
        stage.consume(COUNTS, 0, window, adjustment(window))
        stage.consume(COUNTS, 1, window, adjustment(window))
        await asyncio.wait_for(stage.loop.tick(force=True), 1)  # never waits for a flush
        published = list(range(window + 1))
        for _ in range(200):  # the other partition's flush runs on its own
            if stage.acked[SourcePartition(COUNTS, 1)] == published:
                break
            await asyncio.sleep(0.02)
        assert stage.acked[SourcePartition(COUNTS, 1)] == published
    assert stage.acked[SourcePartition(COUNTS, 0)] == []
    stalling.go.set()
    await stage.tick()
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0, 1, 2]


async def test_a_batch_is_open_then_sealed_then_published(stage: Stage) -> None:
    """What the console's pipeline shows: sealed from the seal until it is in csv/."""
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 0, 1, adjustment(1))
    pending = [{"feed": ADJUSTMENT.name, "rows": 2}]
    assert pipeline(pending, stage.loop.writers(), stage.loop)[0] == {
        "feed": ADJUSTMENT.name,
        "open_batches": 1,
        "open_rows": 2,
        "sealed": 0,
        "published_files": 0,
        "published_rows": 0,
        "last_publish": None,
    }
    stage.dest.error = DestinationRefused("disk full")
    stage.dest.refused = ".staging/"  # the seal is written, the file is not
    await stage.tick()
    (writer,) = [w for w in stage.loop.writers() if w.sealed is not None]
    assert (writer.topic, writer.partition, writer.sealed) == (COUNTS, 0, (0, 1))
    assert pipeline([], stage.loop.writers(), stage.loop)[0]["sealed"] == 1
    stage.dest.error = None
    stage.clock.now += 2
    await stage.tick()
    adjustments, transfers = pipeline([], stage.loop.writers(), stage.loop)
    assert adjustments["sealed"] == 0
    assert (adjustments["published_files"], adjustments["published_rows"]) == (1, 2)
    assert adjustments["last_publish"] is not None
    assert (transfers["published_files"], transfers["last_publish"]) == (0, None)


class RefusingTheRecordOnce(LocalDestination):
    """Takes the file's rename into csv/, then refuses the next write once: the ledger's
    published record, so the flush that landed the file fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.renamed = self.refused = False

    async def rename_noreplace(self, source: str, target: str) -> bool:
        moved = await super().rename_noreplace(source, target)
        self.renamed = self.renamed or target.startswith(ADJUSTMENT.csv_dir)
        return moved

    async def write(self, path: str, data: bytes) -> None:
        if self.renamed and not self.refused:
            self.refused = True
            raise DestinationUnavailable("the server hung up")
        await super().write(path, data)


def published_metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"feed": ADJUSTMENT.name}) or 0.0


async def test_a_file_is_counted_once_by_the_attempt_that_landed_it(tmp_path: Path) -> None:
    """Its flush failed after the rename, and the retry finds the file already in csv/."""
    stage = Stage(tmp_path, RefusingTheRecordOnce(tmp_path))  # type: ignore[arg-type]
    files = published_metric("variance_sync_files_published_total")
    rows = published_metric("variance_sync_rows_published_total")
    landed = published_metric("variance_sync_event_to_csv_seconds_count")
    stage.consume(COUNTS, 0, 0, adjustment(0))
    stage.consume(COUNTS, 0, 1, adjustment(1))
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == []  # the flush failed...
    assert published_metric("variance_sync_files_published_total") == files + 1  # ...landed
    stage.clock.now += 2
    await stage.tick()
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0, 1]
    assert published_metric("variance_sync_files_published_total") == files + 1
    assert published_metric("variance_sync_rows_published_total") == rows + 2
    assert published_metric("variance_sync_event_to_csv_seconds_count") == landed + 2
    status = pipeline([], stage.loop.writers(), stage.loop)[0]
    assert (status["published_files"], status["published_rows"]) == (1, 2)


async def test_a_retrying_writer_stays_retrying_while_its_retry_runs(tmp_path: Path) -> None:
    """Else each retry would read `publishing`, and an alert's `for` would start over."""
    stalling = Stalling(tmp_path)
    stage = Stage(tmp_path, stalling)
    stalling.go.set()
    stalling.error = DestinationUnavailable("the server hung up")
    stage.consume(COUNTS, 0, 0, adjustment(0))
    await stage.tick()
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "retrying"
    stalling.error = None
    stalling.go.clear()
    stage.clock.now += 60
    await stage.loop.tick(force=True)
    for _ in range(200):
        if stalling.held:
            break
        await asyncio.sleep(0.01)
    assert stalling.held  # the retry is under way
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "retrying"
    stalling.go.set()
    await stage.loop.settle()
    assert stage.writer_state(ADJUSTMENT, COUNTS, 0) == "idle"
    assert stage.acked[SourcePartition(COUNTS, 0)] == [0]


async def test_a_sealed_batch_waiting_for_rows_is_told_to_its_partition(stage: Stage) -> None:
    # An earlier owner sealed offsets 0-5 and died before publishing them.
    crashed = FeedPublisher(
        ADJUSTMENT,
        SourcePartition(COUNTS, 0),
        stage.dest,
        BatchLedger(stage.dest),
        PublisherOptions(file_prefix="acme", max_rows=100),
        faults=crash_at_staged,
    )
    await ensure_layout(stage.dest)
    with pytest.raises(DestinationUnavailable):
        await crashed.flush([adjustment(n) for n in range(6)], consumed_through=5)
    state = stage.state(COUNTS, 0)
    for offset in range(3):
        stage.consume(COUNTS, 0, offset, adjustment(offset))
    await stage.tick()
    assert state.seal_ends == {ADJUSTMENT: 5}
    assert state.seal_waits()
    for offset in range(3, 6):
        stage.consume(COUNTS, 0, offset, adjustment(offset))
    await stage.tick()
    assert state.seal_ends == {}
    assert stage.acked[SourcePartition(COUNTS, 0)] == list(range(6))


async def crash_at_staged(step: str) -> None:
    if step == "staged":
        raise DestinationUnavailable("killed")
