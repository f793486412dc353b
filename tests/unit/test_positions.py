from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sinks.feeds import ADJUSTMENT, AdjustmentRow, FeedExport
from streams.core.positions import (
    Applied,
    Position,
    PositionLimits,
    Pruning,
    apply_change,
    horizon_warning,
    may_have_forgotten,
    position_key,
)
from streams.core.routing import Change
from tests.factories import NOON_UTC

CHANGE = Change("STORE_1", "10017", "254", "3410", quantity=-3, counted_quantity=7, export=None)
DAY_MS = 86_400_000


def applied(
    offset: int, topic: str = "counts", at: datetime = NOON_UTC, event_id: str | None = None
) -> Applied:
    at_ms = round(at.timestamp() * 1000)
    return Applied(event_id or f"e{offset}", at, topic, offset, at_ms)


def test_first_change_creates_the_position() -> None:
    position = apply_change(None, CHANGE, applied(5))
    assert position.net_variance == -3
    assert position.exported_variance == 0
    assert position.last_counted_quantity == 7
    assert position.events_applied == 1
    assert position.applied_copy("e5") == ("counts", 5)
    assert position.applied_copy("e4") is None


def test_a_position_names_every_copy_applied_to_it_whatever_the_order() -> None:
    # More events than the 16 recent offsets the heuristic once kept, in shuffled order:
    # each one is still known, and one never applied is still told apart.
    position = None
    offsets = [*range(30, 60), *range(30)]
    for offset in offsets:
        position = apply_change(position, CHANGE, applied(offset))
    assert position is not None
    assert position.events_applied == 60
    assert position.net_variance == -180
    assert all(position.applied_copy(f"e{offset}") == ("counts", offset) for offset in offsets)
    assert position.applied_copy("e60") is None


def test_copies_are_named_per_topic() -> None:
    position = apply_change(None, CHANGE, applied(5, "counts"))
    row = AdjustmentRow("VL-1", "927", "3410", 2, "254", date(2024, 2, 29), "Found", "1")
    exported = Change(
        "STORE_1",
        "10017",
        "254",
        "3410",
        quantity=2,
        counted_quantity=None,
        export=FeedExport(ADJUSTMENT, row),
    )
    after = apply_change(position, exported, applied(5, "variances", event_id="v5"))
    assert after.net_variance == -1
    assert after.exported_variance == 2
    assert after.applied_copy("e5") == ("counts", 5)
    assert after.applied_copy("v5") == ("variances", 5)
    assert after.last_counted_quantity == 7  # a logged variance is not a count


def test_a_copy_is_forgotten_only_below_its_floor_and_past_the_horizon() -> None:
    old = NOON_UTC - timedelta(days=10)
    position = apply_change(None, CHANGE, applied(3, at=old))
    position = apply_change(position, CHANGE, applied(4, "variances", at=old))
    now = applied(9)
    horizon = now.at_ms - 7 * DAY_MS
    # Above the floor: not yet fully processed, so it must stay, however old.
    kept = apply_change(position, CHANGE, now, Pruning({"counts": 3, "variances": 9}, horizon))
    assert kept.applied_copy("e3") == ("counts", 3)
    assert kept.applied_copy("e4") is None  # below its own topic's floor, and old
    # Below the floor but younger than the horizon: a producer's copy may still come.
    recent = apply_change(position, CHANGE, now, Pruning({"counts": 9}, horizon - 11 * DAY_MS))
    assert recent.applied_copy("e3") == ("counts", 3)
    # A topic whose floor is unknown here (not owned) keeps its copies.
    unknown = apply_change(position, CHANGE, now, Pruning({"counts": 9}, horizon))
    assert unknown.applied_copy("e3") is None
    assert unknown.applied_copy("e4") == ("variances", 4)


def test_state_stays_bounded_over_a_long_stream() -> None:
    # A year of daily events on one position: it never names more than the horizon's worth.
    position = None
    largest = 0
    for day in range(365):
        at = NOON_UTC + timedelta(days=day)
        source = applied(day, at=at)
        pruning = Pruning({"counts": day}, source.at_ms - 7 * DAY_MS)
        position = apply_change(position, CHANGE, source, pruning)
        largest = max(largest, len(position.applied_events))
    assert position is not None
    assert position.events_applied == 365
    assert largest == 8


def test_an_older_count_does_not_replace_the_last_counted_quantity() -> None:
    newer = apply_change(None, CHANGE, applied(5))
    older = Change("STORE_1", "10017", "254", "3410", quantity=0, counted_quantity=99, export=None)
    after = apply_change(newer, older, applied(6, at=NOON_UTC - timedelta(days=1)))
    assert after.last_counted_quantity == 7
    assert after.events_applied == 2


def test_positions_round_trip_through_json() -> None:
    position = apply_change(None, CHANGE, applied(5, at=datetime(2024, 1, 1, tzinfo=UTC)))
    assert Position.from_json(position.to_json()) == position
    assert position_key("STORE_1", "10017") == "STORE_1/10017"


def test_a_dlq_that_outlives_the_duplicate_horizon_is_warned_about() -> None:
    week = 7 * 86_400_000
    assert horizon_warning(week, 7) is None
    assert horizon_warning(None, 7) is None  # the broker would not say
    assert horizon_warning(-1, 0) is None  # a horizon of 0 never forgets
    warning = horizon_warning(2 * week, 7)
    assert warning is not None
    assert warning.startswith(
        "the DLQ keeps records 14 days, longer than [dedupe] horizon_days (7)"
    )
    assert "forever" in (horizon_warning(-1, 7) or "")


def test_analytics_keep_the_days_within_retention_of_each_event() -> None:
    position = None
    limits = PositionLimits(analytics_days=30)
    for day in (0, 20, 45):
        change = replace(CHANGE, day=(date(2024, 1, 1) + timedelta(days=day)).isoformat())
        position = apply_change(position, change, applied(day), Pruning({}, 0, limits))
    assert position is not None
    days = sorted(key.rpartition("|")[2] for key in position.analytics)
    # 45 days in: 2024-01-21 is within 30 days of 2024-02-15; 2024-01-01 is not.
    assert days == ["2024-01-21", "2024-01-21", "2024-02-15", "2024-02-15"]
    assert position.net_variance == -9  # the units themselves are never forgotten


def test_past_the_bound_the_oldest_names_below_the_floor_go_first() -> None:
    limits = PositionLimits(max_entries=3)
    position = None
    for offset in range(6):
        pruning = Pruning({"counts": 4}, before_ms=0, limits=limits)  # no age horizon at all
        position = apply_change(position, CHANGE, applied(offset), pruning)
    assert position is not None
    # Offsets 4 and 5 are at or above the floor: kept whatever the bound.
    assert sorted(position.applied_events) == ["e3", "e4", "e5"]
    above = Pruning({"counts": 0}, before_ms=0, limits=limits)
    crowded = apply_change(position, CHANGE, applied(6), above)
    assert sorted(crowded.applied_events) == ["e3", "e4", "e5", "e6"]


def test_a_name_is_forgettable_only_past_the_horizon_or_the_bound() -> None:
    hour = 3_600_000
    named = {"new": ["counts", 9, 10 * hour]}
    old, young = ["counts", 1, 1 * hour], ["counts", 8, 9 * hour]
    assert may_have_forgotten(old, named, 2 * hour, PositionLimits())
    assert not may_have_forgotten(young, named, 2 * hour, PositionLimits())
    assert not may_have_forgotten(old, named, 0, PositionLimits())  # horizon 0: never
    assert may_have_forgotten(young, named, 0, PositionLimits(max_entries=1))
