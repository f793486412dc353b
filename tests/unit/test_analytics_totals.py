"""Running analytics totals: whatever sequence of writes, deletions and partitions
tracked or dropped reaches them, a report from the totals equals the report folded from
the positions the tracked partitions hold at the end."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.core.analytics import accuracy_report, facts, variance_report
from streams.core.analytics_totals import AnalyticsTotals, Pending, answerable, fold
from streams.core.positions import COUNTED

FACILITIES = ("STORE_1", "STORE_2", "STORE_3")
PRODUCTS = ("10017", "10018")
REASONS = ("VAR_DAMAGED", "VAR_FOUND", COUNTED)
DAYS = ("2024-02-28", "2024-02-29", "2024-03-01")
PARTITIONS = (0, 1)
GROUPINGS = [(), ("facility",), ("reason",), ("day",), ("facility", "reason", "day")]
GROUPINGS += [("facility", "day"), ("reason", "day"), ("facility", "reason")]

analytics = st.dictionaries(
    st.builds(lambda r, d: f"{r}|{d}", st.sampled_from(REASONS), st.sampled_from(DAYS)),
    # Zero units and events too: a fold lists such a group, so the totals must.
    st.lists(st.integers(-5, 5), min_size=2, max_size=2),
    max_size=4,
)
# A facility lives on one partition, as the input topics are keyed by facility.
keys = st.tuples(st.sampled_from(FACILITIES), st.sampled_from(PRODUCTS))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, analytics),
        st.tuples(st.just("delete"), keys, st.none()),
        st.tuples(st.just("track"), st.sampled_from(PARTITIONS), st.none()),
        st.tuples(st.just("drop"), st.sampled_from(PARTITIONS), st.none()),
        # A fold read elsewhere: begun from the store as it is, finished later.
        st.tuples(st.just("start"), st.sampled_from(PARTITIONS), st.none()),
        st.tuples(st.just("finish"), st.sampled_from(PARTITIONS), st.none()),
    ),
    max_size=40,
)


def partition_of(facility: str) -> int:
    return FACILITIES.index(facility) % len(PARTITIONS)


class Store:
    """What the totals mirror: the stored positions, per partition."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], dict[str, Any]] = {}

    def on(self, partition: int) -> list[dict[str, Any]]:
        return [p for (f, _), p in self.positions.items() if partition_of(f) == partition]


def run(sequence: list[tuple[str, Any, Any]]) -> tuple[Store, AnalyticsTotals]:
    store, totals = Store(), AnalyticsTotals()
    folds: dict[int, tuple[Pending, list[dict[str, Any]]]] = {}
    for action, subject, value in sequence:
        if action == "track":
            totals.track(subject, store.on(subject))
        elif action == "start":
            folds[subject] = (totals.start(subject), store.on(subject))
        elif action == "finish":
            if subject in folds:
                token, seen = folds.pop(subject)
                totals.finish(subject, token, fold(seen))
        elif action == "drop":
            totals.drop(subject)
        else:
            old = store.positions.get(subject)
            new = None
            if action == "put":
                new = {"facility_id": subject[0], "product_id": subject[1], "analytics": value}
                store.positions[subject] = new
            else:
                store.positions.pop(subject, None)
            totals.replace(partition_of(subject[0]), old, new)
    return store, totals


# A write while a fold is under way, which the fold did not see.
WRITE_DURING_FOLD = [
    ("start", 0, None),
    ("put", ("STORE_1", "10017"), {"VAR_FOUND|2024-02-28": [1, 1]}),
    ("finish", 0, None),
]


@settings(max_examples=500, deadline=None)
@example(WRITE_DURING_FOLD, ("reason",), None, None)
@given(
    steps,
    st.sampled_from(GROUPINGS),
    st.sampled_from((None, *DAYS)),
    st.sampled_from((None, *DAYS)),
)
def test_a_report_from_the_totals_is_the_fold_of_the_tracked_positions(
    sequence: list[tuple[str, Any, Any]], by: tuple[str, ...], since: str | None, until: str | None
) -> None:
    store, totals = run(sequence)
    tracked = sorted(totals.tracked())
    held = [position for partition in tracked for position in store.on(partition)]
    filtered = since is not None or until is not None
    for report in (variance_report, accuracy_report):
        if report is accuracy_report and "reason" in by:
            continue
        expected = report(list(facts(held)), by, since, until)
        found = report(list(totals.facts(tracked, by, filtered)), by, since, until)
        assert found == expected


@given(steps)
def test_a_partition_not_asked_for_is_not_reported(sequence: list[tuple[str, Any, Any]]) -> None:
    store, totals = run([*sequence, ("track", 0, None), ("track", 1, None)])
    held = store.on(1)
    found = variance_report(list(totals.facts([1], ("facility",), False)), ("facility",))
    assert found == variance_report(list(facts(held)), ("facility",))


def test_a_dropped_partition_leaves_nothing_behind() -> None:
    totals = AnalyticsTotals()
    position = {
        "facility_id": "STORE_1",
        "product_id": "1",
        "analytics": {"VAR_LOST|2024-01-01": [-2, 1]},
    }
    totals.track(0, [position])
    assert list(totals.facts([0], ("reason",), False))
    totals.drop(0)
    assert totals.tracked() == frozenset()
    assert list(totals.facts([0], ("reason",), False)) == []
    totals.replace(0, None, position)  # untracked: its fold will read the store
    assert list(totals.facts([0], ("reason",), False)) == []


def test_groups_whose_positions_all_left_disappear() -> None:
    totals = AnalyticsTotals()
    totals.track(0, [])
    position = {"facility_id": "S", "product_id": "1", "analytics": {"VAR_LOST|2024-01-01": [0, 0]}}
    totals.replace(0, None, position)
    assert len(list(totals.facts([0], ("facility", "reason", "day"), False))) == 1
    totals.replace(0, position, None)
    assert list(totals.facts([0], ("facility", "reason", "day"), False)) == []


def test_only_facility_reason_and_day_are_kept() -> None:
    assert answerable(("facility", "reason", "day"))
    assert not answerable(("facility", "product"))
    with pytest.raises(ValueError, match="running totals"):
        list(AnalyticsTotals().facts([0], ("product",), False))


def test_a_fold_begun_before_a_drop_or_a_new_fold_is_not_installed() -> None:
    totals = AnalyticsTotals()
    position = {"facility_id": "S", "product_id": "1", "analytics": {"VAR_LOST|2024-01-01": [1, 1]}}
    first = totals.start(0)
    assert totals.follows() == {0}
    assert totals.tracked() == frozenset()
    totals.drop(0)
    assert not totals.finish(0, first, fold([position]))
    stale, current = totals.start(0), totals.start(0)
    assert not totals.finish(0, stale, fold([position]))
    assert totals.finish(0, current, fold([]))
    assert list(totals.facts([0], ("reason",), False)) == []
