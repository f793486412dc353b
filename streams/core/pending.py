"""Per source partition: where consumption stands, rows waiting for their batch, and events
waiting to be acked.

An event is acked (so Faust may commit past it) only once no feed still holds a row at
or below its offset and, in a worker, once its table writes and dead letter are in the
changelog (`streams.worker.changelog_writer`). Offsets therefore never move past an
unpublished row or an unwritten position, which is what lets a crashed worker's successor
rebuild both.

Events are taken strictly in offset order: `delivery` says whether a record is the next
one, one seen before (the consumer went back), or one past a gap. A gap is refused until
the broker shows that nothing consumable lies in it (`skip_to`); recording past it raises.
So the acked offsets of a partition never jump over an event (Faust would commit past it).

Each acked low-water mark also raises the partition's `Progress` floor
(`streams.core.progress`), which the changelog writer saves with its next flush; the floor
that flush made durable is the one positions may prune by (`durable_floor`).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from sinks.feeds import AnyFeed
from sinks.rows import PendingRow
from sinks.source_partition import SourcePartition
from streams.core.batching import FeedBatcher
from streams.core.progress import DeadLetterMark, Progress
from streams.errors import StreamsError

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


class GapRefused(StreamsError):
    """A record was to be taken past offsets not yet consumed: a bug, never a decision."""


class Delivery(Enum):
    FIRST = "first"  # the partition's first record here: where it starts is not known yet
    NEXT = "next"  # the offset right after the last one consumed
    AGAIN = "again"  # at or below what was consumed: the consumer went back
    AHEAD = "ahead"  # past a gap: offsets in between were not delivered


# Epochs are unique in the process, so that a mark taken before a partition was revoked
# never matches the state of its next assignment.
_EPOCHS = itertools.count()


@dataclass(frozen=True, slots=True)
class ConsumedMark:
    """How far a partition was consumed, in the epoch between two rewinds."""

    epoch: int
    through: int


@dataclass(frozen=True, slots=True)
class Halt:
    """A partition stopped because carrying an event out failed: it waits at `offset`."""

    offset: int
    reason: str
    since: float  # unix seconds
    attempts: int = 1


class SourceState:
    def __init__(
        self, source: SourcePartition, feeds: Sequence[AnyFeed], *, durable_gate: bool = False
    ) -> None:
        self.source = source
        self.batchers = {feed: FeedBatcher() for feed in feeds}
        # The last offset consumed; None until the first record says where this starts.
        self.consumed_through: int | None = None
        # With the gate, events wait for `mark_durable` as well as for their rows.
        self.durable_through: int | None = -1 if durable_gate else None
        self._epoch = next(_EPOCHS)
        self._unacked: deque[tuple[int, Ackable]] = deque()
        # Loaded from the progress table at the first event, once recovery has filled it.
        self.progress: Progress | None = None
        self.progress_saved = True
        # The floor that a changelog flush has made durable: what positions prune by.
        self.durable_floor = 0
        # Why consumption of this partition is paused (backpressure, halt), if it is.
        self.paused: set[str] = set()
        # A refused gap: the offset consumption must resume at, and the first record the
        # broker holds at or after it (None: not looked up yet).
        self.awaiting: tuple[int, int | None] | None = None
        # The highest offset counted in the metrics: a rewind takes events again, and
        # they are still one event each.
        self.counted_through = -1
        # Per feed, the end of a sealed batch (an earlier owner's, say) that needs rows not
        # consumed yet: until they are, no row bound may pause this partition, or the
        # batch (and every row behind it) would wait for ever.
        self.seal_ends: dict[AnyFeed, int] = {}

    @property
    def epoch(self) -> int:
        """Changes at every rewind: what was read of this state before an await is stale
        when it changed meanwhile."""
        return self._epoch

    def first_count(self, offset: int) -> bool:
        """Whether `offset` is taken for the first time by this assignment."""
        if offset <= self.counted_through:
            return False
        self.counted_through = offset
        return True

    @property
    def pending_rows(self) -> int:
        return sum(len(batcher) for batcher in self.batchers.values())

    def seal_waits(self) -> bool:
        """Whether a sealed batch needs rows past the last offset consumed."""
        return any(end > self._through for end in self.seal_ends.values())

    @property
    def _through(self) -> int:
        return -1 if self.consumed_through is None else self.consumed_through

    @property
    def next_offset(self) -> int | None:
        return None if self.consumed_through is None else self.consumed_through + 1

    def delivery(self, offset: int) -> Delivery:
        if self.consumed_through is None:
            return Delivery.FIRST
        if offset <= self.consumed_through:
            return Delivery.AGAIN
        return Delivery.NEXT if offset == self.consumed_through + 1 else Delivery.AHEAD

    def start_at(self, offset: int) -> None:
        """The first offset this assignment consumes (the group's committed offset)."""
        self.consumed_through = offset - 1

    def skip_to(self, offset: int) -> None:
        """Nothing consumable lies below `offset` (transaction markers, aborted records, or
        records the broker no longer holds): the next record may be `offset`."""
        self.consumed_through = max(self._through, offset - 1)
        self.awaiting = None

    def record(
        self, offset: int, event: Ackable, rows: Mapping[AnyFeed, Sequence[PendingRow]], now: float
    ) -> None:
        """Take a consumed event and its rows (none for invalid or duplicate events). It is
        acked by the next `release`: a batch's events are acked together."""
        if self.delivery(offset) is not Delivery.NEXT:
            raise GapRefused(
                f"{self.source.topic}[{self.source.partition}]: offset {offset} taken after "
                f"{self.consumed_through}"
            )
        for feed, feed_rows in rows.items():
            self.batchers[feed].add(feed_rows, now)
        self.consumed_through = offset
        self._unacked.append((offset, event))

    def consumed_mark(self) -> ConsumedMark:
        return ConsumedMark(self._epoch, self._through)

    def mark_durable(self, mark: ConsumedMark, floor: int | None = None) -> None:
        """The table writes (and `floor`, when given) of every event in `mark` are in the
        changelog; ack what may be.

        A mark from before a rewind is stale: the events after the rewind point were
        consumed again, and their writes may be in a later flush.
        """
        if floor is not None:
            self.durable_floor = max(self.durable_floor, floor)
        if self.durable_through is None or mark.epoch != self._epoch:
            return
        self.durable_through = max(self.durable_through, mark.through)
        self.release()

    def rewind(self, offset: int) -> None:
        """Forget everything consumed at or after `offset`: the consumer goes back there.

        Nothing forgotten was acked, and published rows come back as already published,
        so the re-delivered events rebuild exactly what the ledger expects.
        """
        for batcher in self.batchers.values():
            batcher.drop_from(offset)
        while self._unacked and self._unacked[-1][0] >= offset:
            self._unacked.pop()
        self.consumed_through = offset - 1
        self._epoch = next(_EPOCHS)
        self.awaiting = None
        if self.durable_through is not None:
            self.durable_through = min(self.durable_through, offset - 1)

    def rewind_to_durable(self) -> int | None:
        """Forget everything not durable yet (a failed flush lost it); return where
        consumption resumes (None: nothing was consumed)."""
        if self.consumed_through is None:
            return None
        start = self.resume_offset()
        self.rewind(start)
        self.progress = None  # read again from the table, which holds what is durable
        self.progress_saved = True
        return start

    def durable_past(self, offset: int) -> bool:
        """Whether every event up to `offset` is durable."""
        through = self._through if self.durable_through is None else self.durable_through
        return through >= offset

    def resume_offset(self) -> int:
        """The first event that is not durable: where consumption resumes after a rollback."""
        through = self._through if self.durable_through is None else self.durable_through
        return min(through, self._through) + 1

    def low_water(self) -> int:
        """The lowest offset that is still needed; everything below may be acked."""
        firsts = [b.first_offset for b in self.batchers.values() if b.first_offset is not None]
        mark = min(firsts) if firsts else self._through + 1
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
    """The source partitions this worker owns right now, and which partition numbers are
    halted (a failure carrying an event out stops its whole partition number: the tables'
    changelog partition, and so the unit of durability, is shared by both input topics)."""

    def __init__(
        self,
        feeds_by_topic: Mapping[str, Sequence[AnyFeed]],
        *,
        durable_gate: bool = False,
        progress: ProgressStore | None = None,
    ) -> None:
        self._feeds_by_topic = feeds_by_topic
        self._durable_gate = durable_gate
        self._store = progress or MemoryProgress()
        self._states: dict[SourcePartition, SourceState] = {}
        self.halts: dict[int, Halt] = {}
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

    def of_partition(self, partition: int) -> list[SourceState]:
        return [state for state in self._states.values() if state.source.partition == partition]

    def owns(self, state: SourceState) -> bool:
        return self._states.get(state.source) is state

    def unchanged(self, state: SourceState, epoch: int) -> bool:
        """Whether an event of `state` that awaited may go on: the state is still this
        worker's (not revoked, nor revoked and assigned again), not halted or paused, and
        not rewound (a rollback) since `epoch`."""
        return self.owns(state) and not state.paused and state.epoch == epoch

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

    def revoke(self, sources: Sequence[SourcePartition]) -> None:
        """Forget revoked partitions. Their unacked events are simply dropped: the new
        owner consumes them again from the committed offset and rebuilds the same batches;
        a flush still running for them acks nothing (`owns`)."""
        for source in sources:
            self._states.pop(source, None)
        kept = {state.source.partition for state in self._states.values()}
        for partition in [p for p in self.halts if p not in kept]:
            del self.halts[partition]

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
            # What the table holds after recovery is in the changelog: durable.
            state.durable_floor = max(state.durable_floor, state.progress.floor)
        return state.progress

    def save_progress(self, state: SourceState) -> None:
        if state.progress is not None and self.owns(state):
            self._store.save(state.source, state.progress)
            state.progress_saved = True

    def mark_dead_letter(self, state: SourceState, offset: int, mark: DeadLetterMark) -> None:
        """Record where `offset`'s dead letter is (or that it is being sent)."""
        if self.owns(state):
            self.progress_of(state).dead_letters[offset] = mark
            self.save_progress(state)

    def save_floors(self, partition: int) -> dict[SourcePartition, int]:
        """Write the floors of `partition` that rose since they were last written; return
        them, so that the flush that carries them can make them durable."""
        saved = {}
        for state in self.of_partition(partition):
            if not state.progress_saved and state.progress is not None:
                self.save_progress(state)
                saved[state.source] = state.progress.floor
        return saved

    def durable_floors(self, partition: int) -> dict[str, int]:
        """Topic -> durable floor for the input partitions numbered `partition` owned here."""
        return {state.source.topic: state.durable_floor for state in self.of_partition(partition)}

    def consumed(self, partition: int) -> dict[SourcePartition, ConsumedMark]:
        return {state.source: state.consumed_mark() for state in self.of_partition(partition)}

    def mark_durable(
        self,
        consumed: Mapping[SourcePartition, ConsumedMark],
        floors: Mapping[SourcePartition, int],
    ) -> None:
        for source, mark in consumed.items():
            state = self._states.get(source)
            if state is not None:
                state.mark_durable(mark, floors.get(source))
