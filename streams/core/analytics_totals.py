"""Variance analytics kept as running totals, so that a report costs what its answer
costs rather than a fold of every position. Pure.

The totals mirror the positions a table store holds, per store partition: the owner
replaces a position's analytics (`Position.analytics`) exactly when the stored value
changes, and the totals move by the difference. A partition starts from a fold of what
its store holds (`track`) and leaves with it (`drop`); a change to a partition not tracked
is ignored, because its fold, when it comes, will read it from the store.

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


class AnalyticsTotals:
    """Running totals of the analytics of the positions in each tracked partition."""

    def __init__(self) -> None:
        self._partitions: dict[int, dict[Grouping, Totals]] = {}

    def tracked(self) -> frozenset[int]:
        return frozenset(self._partitions)

    def track(self, partition: int, positions: Iterable[Mapping[str, Any]]) -> None:
        """Start tracking `partition` from the positions its store holds now."""
        self._partitions[partition] = {grouping: {} for grouping in GROUPINGS}
        for position in positions:
            self.replace(partition, None, position)

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def replace(
        self, partition: int, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        """The stored position of one key on `partition` went from `old` to `new` (None:
        absent)."""
        totals = self._partitions.get(partition)
        if totals is None:
            return
        before: Analytics = (old or {}).get("analytics") or {}
        after: Analytics = (new or {}).get("analytics") or {}
        if before == after:
            return  # the common case for a position written without a new event
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


def _add(
    totals: dict[Grouping, Totals], facility: str, key: str, delta: tuple[int, int, int]
) -> None:
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
