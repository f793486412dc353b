"""The publish loop: closes due batches and lets their offsets be committed.

It runs beside the agent on a short tick, so an idle partition's window still closes on
time. Failures keep every row and back off; nothing is dropped while the SFTP server is
down (consumption pauses instead, once `batching.max_pending_rows` rows are waiting).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sinks.batching import WindowPolicy
from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feeds import Feed
from sinks.layout import ensure_layout
from sinks.ledger import BatchLedger
from sinks.publisher import FaultHook, FeedPublisher, FlushResult, PublisherOptions, no_faults
from sinks.retry import Backoff
from streams import metrics
from streams.sources import SourceRegistry, SourceState

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
    ) -> None:
        self._sources = sources
        self._dest = dest
        self._ledger = BatchLedger(dest)
        self._options = options
        self._policy = policy
        self._backoff = backoff
        self._faults = faults
        self._monotonic = monotonic
        self._tick_seconds = tick_seconds
        self._probe_seconds = probe_seconds
        self._last_contact = float("-inf")
        self.last_error: str | None = None
        self.last_publish: dict[str, float] = {}  # feed -> unix time of its last new file
        self._layout_ready = False

    @property
    def healthy(self) -> bool:
        """Whether the destination answered the last time we needed it."""
        return self._layout_ready and self.last_error is None

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._tick_seconds)

    async def tick(self, force: bool = False) -> None:
        """Flush every due batch (every non-empty one when `force`)."""
        if not self._backoff.ready(self._monotonic()) or not await self._layout():
            return
        for state in self._sources:
            for feed in state.batchers:
                if not await self._maybe_flush(state, feed, force):
                    return
        await self._probe()
        self._update_gauges()

    async def _probe(self) -> None:
        """Touch an idle destination now and then, so /ready notices an outage."""
        if self._monotonic() - self._last_contact < self._probe_seconds:
            return
        try:
            await self._dest.exists(Feed.ADJUSTMENT.csv_dir)
        except SinkError as exc:
            self._failed(None, exc)
            return
        self._last_contact = self._monotonic()

    async def _layout(self) -> bool:
        """Create the NetSuite folder tree once, on the first healthy connection."""
        if not self._layout_ready:
            try:
                await ensure_layout(self._dest)
            except SinkError as exc:
                self._failed(None, exc)
                return False
            self._layout_ready = True
            self._last_contact = self._monotonic()
        return True

    async def _maybe_flush(self, state: SourceState, feed: Feed, force: bool) -> bool:
        """Flush one batch if due; False when the destination failed and we must back off."""
        batcher = state.batchers[feed]
        due = len(batcher) > 0 if force else batcher.is_due(self._monotonic(), self._policy)
        if not due:
            return True
        async with state.lock:
            if self._sources.get(state.source) is not state:
                return True  # revoked while we waited for the lock
            publisher = FeedPublisher(
                feed, state.source, self._dest, self._ledger, self._options, faults=self._faults
            )
            consumed = state.consumed_through
            try:
                result = await publisher.flush(batcher.rows_through(consumed), consumed)
            except SinkError as exc:
                self._failed(feed, exc)
                return False
            self._succeeded(feed, result)
            batcher.drop_through(result.done_through)
            state.release()
            await self._faults("released")
        self._sources.notify_progress()
        return True

    def _failed(self, feed: Feed | None, exc: SinkError) -> None:
        delay = self._backoff.failed(self._monotonic())
        self.last_error = f"{type(exc).__name__}: {exc}"
        metrics.PUBLISH_FAILURES.labels(feed.value if feed else "all", type(exc).__name__).inc()
        level = logging.WARNING if exc.retriable else logging.ERROR
        log.log(
            level,
            "publishing to %s failed (%s); keeping the batch, retry in %.1fs",
            self._dest.description,
            self.last_error,
            delay,
        )

    def _succeeded(self, feed: Feed, result: FlushResult) -> None:
        self._last_contact = self._monotonic()
        self._backoff.succeeded()
        self.last_error = None
        if result.published:
            metrics.FILES_PUBLISHED.labels(feed.value).inc(len(result.published))
            metrics.ROWS_PUBLISHED.labels(feed.value).inc(result.rows_published)
            metrics.LAST_PUBLISH.labels(feed.value).set_to_current_time()
            self.last_publish[feed.value] = time.time()

    def _update_gauges(self) -> None:
        now = self._monotonic()
        for feed in Feed:
            batchers = [s.batchers[feed] for s in self._sources if feed in s.batchers]
            metrics.PENDING_ROWS.labels(feed.value).set(sum(len(b) for b in batchers))
            metrics.OLDEST_PENDING_AGE.labels(feed.value).set(
                max((b.age(now) for b in batchers), default=0)
            )
