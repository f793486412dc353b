"""Per source partition: rows waiting for their batch, and events waiting to be acked.

An event is acked (so Faust may commit past it) only once no feed still holds a row at
or below its offset and, in a worker, once its table writes are in the changelog
(`streams.worker.changelog_writer`). Offsets therefore never move past an unpublished row or an
unwritten position, which is what lets a crashed worker's successor rebuild both.

Each acked low-water mark also raises the partition's `Progress` floor
(`streams.core.progress`), which the registry writes to the progress table now and then.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sinks.feeds import Feed
from sinks.rows import PendingRow
from sinks.source_partition import SourcePartition
from streams.core.batching import FeedBatcher
from streams.core.progress import Progress

log = logging.getLogger(__name__)


class Ackable(Protocol):
    def ack(self) -> bool: ...


class ProgressStore(Protocol):
    """Where partition progress is kept: the changelog-backed progress table in a worker."""

    def load(self, source: SourcePartition) -> Progress | None: ...

    def save(self, source: SourcePartition, progress: Progress) -> None: ...


class MemoryProgress:
    """A `ProgressStore` in a dict, for the fold and for tests."""

    def __init__(self) -> None:
        self.saved: dict[SourcePartition, dict[str, object]] = {}

    def load(self, source: SourcePartition) -> Progress | None:
        data = self.saved.get(source)
        return None if data is None else Progress.from_json(dict(data))

    def save(self, source: SourcePartition, progress: Progress) -> None:
        self.saved[source] = progress.to_json()


# Epochs are unique in the process, so that a mark taken before a partition was revoked
# never matches the state of its next assignment.
_EPOCHS = itertools.count()


@dataclass(frozen=True, slots=True)
class ConsumedMark:
    """How far a partition was consumed, in the epoch between two rewinds."""

    epoch: int
    through: int


class SourceState:
    def __init__(
        self, source: SourcePartition, feeds: Sequence[Feed], *, durable_gate: bool = False
    ) -> None:
        self.source = source
        self.batchers = {feed: FeedBatcher() for feed in feeds}
        self.consumed_through = -1
        # With the gate, events wait for `mark_durable` as well as for their rows.
        self.durable_through: int | None = -1 if durable_gate else None
        self._epoch = next(_EPOCHS)
        # Held for the whole flush so that revoking the partition waits for it.
        self.lock = asyncio.Lock()
        self._unacked: deque[tuple[int, Ackable]] = deque()
        # Loaded from the progress table at the first event, once recovery has filled it.
        self.progress: Progress | None = None
        self.progress_saved = True

    @property
    def pending_rows(self) -> int:
        return sum(len(batcher) for batcher in self.batchers.values())

    def record(
        self, offset: int, event: Ackable, rows: Mapping[Feed, Sequence[PendingRow]], now: float
    ) -> None:
        """Take a consumed event and its rows (none for invalid or duplicate events)."""
        if offset > self.consumed_through + 1 and self.consumed_through >= 0:
            # Legitimate for transaction markers; after a seek it would be worth a look.
            log.info(
                "%s[%d]: offsets %d-%d were not delivered before offset %d",
                self.source.topic,
                self.source.partition,
                self.consumed_through + 1,
                offset - 1,
                offset,
            )
        for feed, feed_rows in rows.items():
            self.batchers[feed].add(feed_rows, now)
        self.consumed_through = max(self.consumed_through, offset)
        self._unacked.append((offset, event))
        self.release()

    def consumed_mark(self) -> ConsumedMark:
        return ConsumedMark(self._epoch, self.consumed_through)

    def mark_durable(self, mark: ConsumedMark) -> None:
        """The table writes of every event in `mark` are in the changelog; ack what may be.

        A mark from before a rewind is stale: the events after the rewind point were
        consumed again, and their writes may be in a later flush.
        """
        if self.durable_through is None or mark.epoch != self._epoch:
            return
        self.durable_through = max(self.durable_through, mark.through)
        self.release()

    def rewind(self, offset: int) -> None:
        """Forget everything consumed at or after `offset`: the consumer went back there.

        Nothing forgotten was acked, and published rows come back as already published,
        so the re-delivered events rebuild exactly what the ledger expects.
        """
        for batcher in self.batchers.values():
            batcher.drop_from(offset)
        while self._unacked and self._unacked[-1][0] >= offset:
            self._unacked.pop()
        self.consumed_through = min(self.consumed_through, offset - 1)
        self._epoch = next(_EPOCHS)
        if self.durable_through is not None:
            self.durable_through = min(self.durable_through, offset - 1)

    def low_water(self) -> int:
        """The lowest offset that is still needed; everything below may be acked."""
        firsts = [b.first_offset for b in self.batchers.values() if b.first_offset is not None]
        mark = min(firsts) if firsts else self.consumed_through + 1
        if self.durable_through is not None:
            mark = min(mark, self.durable_through + 1)
        return mark

    def release(self) -> int:
        """Ack every held event below the low-water mark; return how many."""
        mark = self.low_water()
        released = 0
        while self._unacked and self._unacked[0][0] < mark:
            _, event = self._unacked.popleft()
            event.ack()
            released += 1
        if released and self.progress is not None and self.progress.advance(mark):
            self.progress_saved = False
        return released


class SourceRegistry:
    """The source partitions this worker owns right now."""

    def __init__(
        self,
        feeds_by_topic: Mapping[str, Sequence[Feed]],
        *,
        durable_gate: bool = False,
        progress: ProgressStore | None = None,
    ) -> None:
        self._feeds_by_topic = feeds_by_topic
        self._durable_gate = durable_gate
        self._store = progress or MemoryProgress()
        self._states: dict[SourcePartition, SourceState] = {}
        self._progress = asyncio.Event()
        # Set by the first assignment, even an empty one (more workers than partitions).
        self.joined = False

    def __iter__(self) -> Iterator[SourceState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)

    def get(self, source: SourcePartition) -> SourceState | None:
        """The state of an owned partition; None for one this worker does not own, such
        as an event still in flight from a partition revoked a moment ago."""
        return self._states.get(source)

    def assign(self, sources: Sequence[SourcePartition]) -> None:
        self.joined = True
        for source in sources:
            if source.topic in self._feeds_by_topic and source not in self._states:
                self.adopt(source)

    def adopt(self, source: SourcePartition) -> SourceState:
        """The state of an assigned input partition, made now if the assignment has not
        reached the registry yet."""
        state = self._states.get(source)
        if state is None:
            feeds = self._feeds_by_topic[source.topic]
            state = self._states[source] = SourceState(
                source, feeds, durable_gate=self._durable_gate
            )
        return state

    @property
    def pending_rows(self) -> int:
        return sum(state.pending_rows for state in self._states.values())

    def use_progress(self, store: ProgressStore) -> None:
        """Keep progress in `store` (the worker's table, registered after the registry)."""
        self._store = store

    def progress_of(self, state: SourceState) -> Progress:
        """The partition's progress; call only while processing its events (after the
        table recovered), never earlier, or a stale floor would be taken for true."""
        if state.progress is None:
            state.progress = self._store.load(state.source) or Progress()
        return state.progress

    def save_progress(self, state: SourceState) -> None:
        if state.progress is not None:
            self._store.save(state.source, state.progress)
            state.progress_saved = True

    def save_floors(self) -> int:
        """Write every floor that rose since it was last written; return how many."""
        dirty = [state for state in self._states.values() if not state.progress_saved]
        for state in dirty:
            self.save_progress(state)
        return len(dirty)

    def floors(self, partition: int) -> dict[str, int]:
        """Topic -> floor for the input partitions numbered `partition` owned here."""
        return {
            source.topic: state.progress.floor
            for source, state in self._states.items()
            if source.partition == partition and state.progress is not None
        }

    def consumed(self) -> dict[SourcePartition, ConsumedMark]:
        return {source: state.consumed_mark() for source, state in self._states.items()}

    def mark_durable(self, source: SourcePartition, mark: ConsumedMark) -> None:
        state = self._states.get(source)
        if state is not None:
            state.mark_durable(mark)

    async def revoke(self, sources: Sequence[SourcePartition]) -> None:
        """Forget revoked partitions once any flush in progress on them has finished.

        Their unacked events are simply dropped: the new owner consumes them again from
        the committed offset and rebuilds the same batches.
        """
        for source in sources:
            state = self._states.get(source)
            if state is None:
                continue
            async with state.lock:
                self._states.pop(source, None)

    def notify_progress(self) -> None:
        self._progress.set()

    async def wait_below(self, limit: int) -> None:
        """Backpressure: wait while more than `limit` rows wait to be published."""
        while self.pending_rows > limit:
            self._progress.clear()
            await self._progress.wait()
