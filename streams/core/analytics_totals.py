"""Variance analytics kept as running totals, so that a report costs what its answer
costs rather than a fold of every position. Pure.

The totals mirror the positions a table store holds, per store partition: the owner
replaces a position's analytics (`Position.analytics`) exactly when the stored value
changes, and the totals move by the difference. A partition starts from a fold of what
its store holds (`track`; or `start`, a fold elsewhere, then `finish`) and leaves with it
(`drop`); a change to a partition not followed is ignored, because its fold, when it
comes, will read it from the store.

Every total is kept under four groupings of (facility, reason, day): all three, and
reason alone, with the facility, or with the day. A report keyed by facility, reason
and day (and filtered by day) reads the smallest of them that holds its keys, so the
console's queries touch facilities x reasons or reasons x days entries at most. Each
group also counts the position entries behind it and goes when that reaches zero, so a
report lists exactly the groups a fold of the positions would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from streams.core.analytics import Fact

# Which of (facility, day) a grouping keeps besides the reason, which every grouping keeps
# because it tells variances from count tallies.
Grouping = tuple[bool, bool]
FULL, REASON, BY_FACILITY, BY_DAY = (True, True), (False, False), (True, False), (False, True)
GROUPINGS: tuple[Grouping, ...] = (FULL, REASON, BY_FACILITY, BY_DAY)
# group -> [first, second, entries]: units and events (for counts: counted and matched),
# and how many position entries add up to them.
Totals = dict[tuple[str, str, str], list[int]]
Analytics = Mapping[str, Sequence[int]]

TOTAL_KEYS = frozenset(("facility", "reason", "day"))
PartitionTotals = dict[Grouping, Totals]
# The changes to a partition while its fold is under way, to apply on top of the fold.
Pending = list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]


def fold(
    positions: Iterable[Mapping[str, Any]], into: PartitionTotals | None = None
) -> PartitionTotals:
    """The totals of `positions` (one partition's store), added to `into` if given: a
    store can be folded a slice at a time."""
    totals: PartitionTotals = into if into is not None else {g: {} for g in GROUPINGS}
    for position in positions:
        _move(totals, None, position)
    return totals


class AnalyticsTotals:
    """Running totals of the analytics of the positions in each tracked partition.

    A partition's fold may read a consistent version of its store a slice at a time
    while the store keeps changing: `start` marks the moment of that version, changes
    after it wait in order, and `finish` applies them on top of the fold."""

    def __init__(self) -> None:
        self._partitions: dict[int, PartitionTotals] = {}
        self._folding: dict[int, Pending] = {}

    def tracked(self) -> frozenset[int]:
        """Partitions whose totals are complete."""
        return frozenset(self._partitions)

    def follows(self) -> frozenset[int]:
        """Partitions whose changes count: tracked, or folding."""
        return frozenset(self._partitions.keys() | self._folding.keys())

    def track(self, partition: int, positions: Iterable[Mapping[str, Any]]) -> None:
        """Start tracking `partition` from the positions its store holds now."""
        self.finish(partition, self.start(partition), fold(positions))

    def start(self, partition: int) -> Pending:
        """A fold of `partition` begins from the store as it is now; the answer is the
        token `finish` takes."""
        self.drop(partition)
        pending: Pending = []
        self._folding[partition] = pending
        return pending

    def finish(self, partition: int, token: Pending, folded: PartitionTotals) -> bool:
        """Track `partition` from `folded` (the fold begun by `start` that gave `token`),
        unless it was dropped or begun again since."""
        if self._folding.get(partition) is not token:
            return False
        del self._folding[partition]
        for old, new in token:
            _move(folded, old, new)
        self._partitions[partition] = folded
        return True

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)
        self._folding.pop(partition, None)

    def replace(
        self, partition: int, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        """The stored position of one key on `partition` went from `old` to `new` (None:
        absent)."""
        totals = self._partitions.get(partition)
        if totals is not None:
            _move(totals, old, new)
            return
        pending = self._folding.get(partition)
        if pending is not None:
            pending.append((old, new))

    def facts(
        self,
        partitions: Iterable[int],
        by: Sequence[str],
        filtered: bool,
    ) -> Iterator[Fact]:
        """Facts for a report grouped `by` keys of (facility, reason, day), from the
        smallest grouping that holds them (and the day too when `filtered` by it). A fact
        stands for a group of positions: its product is empty."""
        if not set(by) <= TOTAL_KEYS:
            raise ValueError(f"running totals group by {', '.join(sorted(TOTAL_KEYS))} only")
        grouping = ("facility" in by, "day" in by or filtered)
        for partition in sorted(set(partitions) & self._partitions.keys()):
            for (facility, reason, day), (first, second, _) in self._partitions[partition][
                grouping
            ].items():
                yield Fact(facility, "", reason, day, first, second)


def _move(
    totals: PartitionTotals, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> None:
    before: Analytics = (old or {}).get("analytics") or {}
    after: Analytics = (new or {}).get("analytics") or {}
    if before == after:
        return  # nothing to move, as when a position is written back unchanged
    facility = str((new or old or {})["facility_id"])  # a key's facility never changes
    for key, value in after.items():
        previous = before.get(key)
        if previous is None:
            _add(totals, facility, key, (int(value[0]), int(value[1]), 1))
        elif previous != value:
            delta = (int(value[0]) - int(previous[0]), int(value[1]) - int(previous[1]), 0)
            _add(totals, facility, key, delta)
    for key, value in before.items():
        if key not in after:
            _add(totals, facility, key, (-int(value[0]), -int(value[1]), -1))


def _add(totals: PartitionTotals, facility: str, key: str, delta: tuple[int, int, int]) -> None:
    """Move the groups of one position entry `key` by `delta`: (first, second, entries)."""
    reason, _, day = key.partition("|")
    first, second, entries = delta
    for grouping, group in (
        (FULL, (facility, reason, day)),
        (REASON, ("", reason, "")),
        (BY_FACILITY, (facility, reason, "")),
        (BY_DAY, ("", reason, day)),
    ):
        found = totals[grouping].get(group)
        if found is None:
            totals[grouping][group] = [first, second, entries]
            continue
        found[0] += first
        found[1] += second
        found[2] += entries
        if not found[2]:
            del totals[grouping][group]


def answerable(by: Sequence[str]) -> bool:
    """Whether the running totals answer a report grouped `by` (keys of KEYS): not by
    product, which is as large as the table."""
    return set(by) <= TOTAL_KEYS
