"""One writer per (feed, source partition): when to run the publish protocol, and what a
failure does to it.

In the spirit of Kafka Connect's `TopicPartitionWriter`: an explicit state, an injected
clock and a backoff of its own, so that one partition's trouble never holds up another.

    IDLE --flush--> PUBLISHING --ok--> IDLE
                         |--retriable error-----> RETRYING --backoff over--> (may flush)
                         |                           '--still failing after park_after--> PARKED
                         '--non-retriable error--> PARKED ---slow retry----> (may flush)

A retriable error (the server is down, a disk is full, a staged file did not verify)
waits out a capped exponential backoff; one that has lasted `park_after_seconds` without
a success in between, from a server that answers, needs an operator after all, so the
writer parks (it keeps the same
backoff: the cause may go away by itself). A non-retriable one (a host key that is not the
pinned one, a ledger that disagrees with itself) needs an operator: the writer is
parked, says so on `/ready`, `/batches` and `variance-sync lag`, and tries again only
every `retry_max_seconds`, in case the operator fixed the cause in place. Nothing is ever
dropped: the rows wait, and so do their offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sinks.destination import Destination
from sinks.exceptions import DestinationUnavailable, SinkError
from sinks.feed_publisher import (
    AttemptHook,
    FaultHook,
    FeedPublisher,
    FlushResult,
    PublisherOptions,
    ignore_attempt,
    no_faults,
)
from sinks.feeds import AnyFeed
from sinks.retry import Backoff
from sinks.rows import PendingRow
from sinks.seal_ledger import BatchLedger
from sinks.source_partition import SourcePartition

log = logging.getLogger(__name__)


class WriterState(StrEnum):
    IDLE = "idle"
    PUBLISHING = "publishing"  # a publish after a success (a retry keeps its state)
    RETRYING = "retrying"  # a retriable failure: waiting out the backoff
    PARKED = "parked"  # a non-retriable failure: needs an operator


@dataclass(frozen=True, slots=True)
class WriterStatus:
    feed: str
    topic: str
    partition: int
    state: str
    error: str | None
    retry_in_seconds: float | None
    sealed: tuple[int, int] | None = None  # a sealed batch's offsets, not yet published


class PartitionWriter:
    def __init__(
        self,
        feed: AnyFeed,
        source: SourcePartition,
        dest: Destination,
        ledger: BatchLedger,
        options: PublisherOptions,
        *,
        backoff: Backoff,
        clock: Callable[[], float],
        faults: FaultHook = no_faults,
        observe: AttemptHook = ignore_attempt,
    ) -> None:
        self.feed = feed
        self.source = source
        self._publisher = FeedPublisher(
            feed, source, dest, ledger, options, faults=faults, observe=observe
        )
        self._backoff = backoff
        self._clock = clock
        self._retry_slowly = backoff.maximum
        self._park_after = options.park_after_seconds
        self._failing_since: float | None = None
        self.state = WriterState.IDLE
        self.error: str | None = None
        self.error_type: str | None = None
        self.unreachable = False  # the last failure was the server not answering at all

    def ready(self) -> bool:
        """Whether a flush may run now (always, unless a failure's wait is not over)."""
        return self._backoff.ready(self._clock())

    async def flush(self, rows: Sequence[PendingRow], consumed_through: int) -> FlushResult | None:
        """Run the publish protocol; None when it failed (the rows stay, nothing is acked)."""
        parked = self.state is WriterState.PARKED
        if self.state is WriterState.IDLE:
            # A retry keeps its writer retrying or parked until it succeeds: a state that
            # flipped to publishing for each retry would reset an alert's `for` (and a
            # parked writer whose retries take long would never page).
            self.state = WriterState.PUBLISHING
        try:
            result = await self._publisher.flush(rows, consumed_through)
        except SinkError as exc:
            self._failed(exc, was_parked=parked)
            return None
        if self.error is not None:
            log.info("%s: publishing again after %s", self._label, self.error)
        self._backoff.succeeded()
        self._failing_since = None
        self.state, self.error, self.error_type, self.unreachable = (
            WriterState.IDLE,
            None,
            None,
            False,
        )
        return result

    def status(self) -> WriterStatus:
        wait = self._backoff.not_before - self._clock()
        retry = round(wait, 1) if self.state in (WriterState.RETRYING, WriterState.PARKED) else None
        return WriterStatus(
            self.feed.name,
            self.source.topic,
            self.source.partition,
            self.state.value,
            self.error,
            max(retry, 0.0) if retry is not None else None,
            self._publisher.sealed,
        )

    def _failed(self, exc: SinkError, *, was_parked: bool) -> None:
        self.error_type = type(exc).__name__
        self.error = f"{self.error_type}: {exc}"
        self.unreachable = isinstance(exc, DestinationUnavailable)
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if exc.retriable:
            delay = self._backoff.failed(now)
            # An unreachable server is the destination's outage, seen on /ready already;
            # parking is for a server that answers and keeps refusing.
            if not self.unreachable and now - self._failing_since >= self._park_after:
                if not was_parked:
                    log.error(
                        "%s PARKED: failing for %.0fs (%s); it needs an operator; the batch "
                        "is kept and retried in %.1fs",
                        self._label,
                        now - self._failing_since,
                        self.error,
                        delay,
                    )
                self.state = WriterState.PARKED
                return
            self.state = WriterState.RETRYING
            log.warning(
                "%s failed (%s); keeping the batch, retry in %.1fs", self._label, self.error, delay
            )
            return
        self._backoff.failed(now)
        self._backoff.not_before = now + self._retry_slowly
        self.state = WriterState.PARKED
        level = logging.DEBUG if was_parked else logging.ERROR
        log.log(
            level,
            "%s PARKED (%s): it needs an operator; the batch is kept and tried again every %.0fs",
            self._label,
            self.error,
            self._retry_slowly,
        )

    @property
    def _label(self) -> str:
        return f"{self.feed.name} {self.source.topic}[{self.source.partition}]"
