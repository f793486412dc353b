"""The publish loop: closes due batches and lets their offsets be committed.

It runs beside the agent on a short tick, so an idle partition's window still closes on
time. Each (feed, source partition) has its own `sinks.partition_writer.PartitionWriter`
with its own backoff, and each flush runs as a task of its own: the tick starts the due
ones and waits for none, so a writer waiting on a slow or failing folder holds up no
other writer, window after window. A failure keeps that writer's rows; nothing is dropped
while the SFTP server is down (that partition's consumption pauses instead, once
`batching.max_pending_rows` of its rows are waiting).

After a successful flush of a batch (steps 1-7 of docs/publish-protocol.md) the loop
takes step 8, the ack decision: it drops the batch's rows and acks every event below the
partition's new low-water mark (`streams.core.pending.SourceState.release`). A partition
revoked while its flush ran acks nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feed_publisher import FaultHook, FileAttempt, PublisherOptions, no_faults
from sinks.feeds import FEEDS, STATE_DIR, AnyFeed
from sinks.layout import ensure_layout
from sinks.partition_writer import PartitionWriter, WriterState, WriterStatus
from sinks.retry import Backoff
from sinks.seal_ledger import BatchLedger
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.core.batching import WindowPolicy
from streams.core.pending import SourceRegistry, SourceState

log = logging.getLogger(__name__)


class PublishLoop:
    def __init__(
        self,
        sources: SourceRegistry,
        dest: Destination,
        options: PublisherOptions,
        policy: WindowPolicy,
        backoff: Backoff,
        *,
        faults: FaultHook = no_faults,
        monotonic: Callable[[], float] = time.monotonic,
        tick_seconds: float = 0.5,
        probe_seconds: float = 15.0,
        on_published: Callable[[SourceState], Awaitable[None]] | None = None,
    ) -> None:
        self._sources = sources
        self._dest = dest
        self._ledger = BatchLedger(dest)
        self._options = options
        self._policy = policy
        self._backoff = backoff  # for the destination as a whole: layout and probes
        self._faults = faults
        self._monotonic = monotonic
        self._tick_seconds = tick_seconds
        self._probe_seconds = probe_seconds
        self._last_contact = float("-inf")
        self._writers: dict[tuple[AnyFeed, SourcePartition], PartitionWriter] = {}
        self._flushing: dict[tuple[AnyFeed, SourcePartition], asyncio.Task[None]] = {}
        self._probing: asyncio.Task[None] | None = None
        self._on_published = on_published
        self.last_error: str | None = None  # of the destination as a whole
        self.last_publish: dict[str, float] = {}  # feed -> unix time of its last new file
        # Since this worker started: feed -> files / rows it published.
        self.published_files: Counter[str] = Counter()
        self.published_rows: Counter[str] = Counter()
        self._layout_ready = False

    @property
    def healthy(self) -> bool:
        """Whether the destination answered the last time we needed it."""
        return self._layout_ready and self.last_error is None

    def writers(self) -> list[WriterStatus]:
        return [writer.status() for writer in self._writers.values()]

    def parked(self) -> list[WriterStatus]:
        return [s for s in self.writers() if s.state == WriterState.PARKED.value]

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._tick_seconds)

    async def tick(self, force: bool = False) -> None:
        """Start a flush of every due batch (every non-empty one when `force`)."""
        self._forget_revoked()
        if not self._backoff.ready(self._monotonic()) or not await self._layout():
            return
        for state in self._sources:
            for feed in state.batchers:
                self._maybe_start(state, feed, force)
        if self._probing is None or self._probing.done():
            self._probing = asyncio.create_task(self._probe())
        self._update_gauges()

    async def settle(self) -> None:
        """Wait for the flushes that are running (tests, and a clean stop)."""
        await asyncio.gather(*self._flushing.values(), return_exceptions=True)

    def _forget_revoked(self) -> None:
        owned = {state.source for state in self._sources}
        for key in [key for key in self._writers if key[1] not in owned]:
            del self._writers[key]
        for key in [key for key, task in self._flushing.items() if task.done()]:
            del self._flushing[key]

    async def _probe(self) -> None:
        """Touch an idle destination now and then, so /ready notices an outage."""
        if self._monotonic() - self._last_contact < self._probe_seconds:
            return
        try:
            await self._dest.exists(STATE_DIR)
        except SinkError as exc:
            self._destination_failed(exc)
            return
        self._destination_answered()

    async def _layout(self) -> bool:
        """Create the NetSuite folder tree once, on the first healthy connection."""
        if not self._layout_ready:
            try:
                await ensure_layout(self._dest)
            except SinkError as exc:
                self._destination_failed(exc)
                return False
            self._layout_ready = True
            self._destination_answered()
        return True

    def _writer(self, state: SourceState, feed: AnyFeed) -> PartitionWriter:
        key = (feed, state.source)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = PartitionWriter(
                feed,
                state.source,
                self._dest,
                self._ledger,
                self._options,
                backoff=Backoff(self._backoff.initial, self._backoff.maximum),
                clock=self._monotonic,
                faults=self._faults,
                observe=self._observe_attempt,
            )
        return writer

    def _maybe_start(self, state: SourceState, feed: AnyFeed, force: bool) -> None:
        key = (feed, state.source)
        running = self._flushing.get(key)
        if running is not None and not running.done():
            return
        batcher = state.batchers[feed]
        due = len(batcher) > 0 if force else batcher.is_due(self._monotonic(), self._policy)
        writer = self._writer(state, feed)
        if due and writer.ready():
            self._flushing[key] = asyncio.create_task(self._flush(state, feed, writer))

    async def _flush(self, state: SourceState, feed: AnyFeed, writer: PartitionWriter) -> None:
        batcher = state.batchers[feed]
        consumed = state.consumed_through
        if consumed is None:
            return
        result = await writer.flush(batcher.rows_through(consumed), consumed)
        if result is None:
            self._writer_failed(writer)
            return
        self._destination_answered()
        if not self._sources.owns(state):
            return  # revoked meanwhile: its next owner acks
        if result.waiting_for is None:
            state.seal_ends.pop(feed, None)
        else:
            state.seal_ends[feed] = result.waiting_for
        batcher.drop_through(result.done_through)
        state.release()
        await self._faults("released")
        if self._on_published is not None:
            await self._on_published(state)

    def _destination_failed(self, exc: SinkError) -> None:
        delay = self._backoff.failed(self._monotonic())
        self.last_error = f"{type(exc).__name__}: {exc}"
        metrics.PUBLISH_FAILURES.labels("all", type(exc).__name__).inc()
        level = logging.WARNING if exc.retriable else logging.ERROR
        log.log(
            level,
            "%s does not answer (%s); retry in %.1fs",
            self._dest.description,
            self.last_error,
            delay,
        )

    def _writer_failed(self, writer: PartitionWriter) -> None:
        metrics.PUBLISH_FAILURES.labels(writer.feed.name, writer.error_type or "").inc()
        if writer.unreachable:
            # Health only: the other writers keep their own pace.
            self.last_error = writer.error

    def _destination_answered(self) -> None:
        self._last_contact = self._monotonic()
        self._backoff.succeeded()
        self.last_error = None

    def _observe_attempt(self, attempt: FileAttempt) -> None:
        """Every attempt's duration; a landed file, its rows and their latencies once, by
        the attempt that landed it. Counted here, not when its flush returns: a flush that
        fails after the rename (its ledger record refused) still landed the file, and its
        retry finds it present and counts nothing; and one scrape never sees a file's
        latencies without the file."""
        feed = attempt.feed.name
        metrics.PUBLISH_DURATION.labels(feed).observe(attempt.seconds)
        if attempt.landed_at is None:
            return
        rows = len(attempt.record_times)
        metrics.FILES_PUBLISHED.labels(feed).inc()
        metrics.ROWS_PUBLISHED.labels(feed).inc(rows)
        metrics.LAST_PUBLISH.labels(feed).set_to_current_time()
        self.last_publish[feed] = time.time()
        self.published_files[feed] += 1
        self.published_rows[feed] += rows
        latency = metrics.EVENT_TO_CSV.labels(feed)
        for seconds in metrics.seconds_to_csv(attempt.record_times, attempt.landed_at):
            latency.observe(seconds)

    def _update_gauges(self) -> None:
        now = self._monotonic()
        for feed in FEEDS:
            batchers = [s.batchers[feed] for s in self._sources if feed in s.batchers]
            metrics.PENDING_ROWS.labels(feed.name).set(sum(len(b) for b in batchers))
            metrics.OLDEST_PENDING_AGE.labels(feed.name).set(
                max((b.age(now) for b in batchers), default=0)
            )
        for state in WriterState:
            count = sum(1 for w in self._writers.values() if w.state is state)
            metrics.WRITERS.labels(state.value).set(count)
