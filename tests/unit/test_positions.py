from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sinks.rows import AdjustmentRow
from streams.positions import RECENT_OFFSETS, Applied, Position, apply_change, position_key
from streams.routing import Change
from tests.factories import NOON_UTC

CHANGE = Change("STORE_1", "10017", "254", "3410", quantity=-3, counted_quantity=7, row=None)


def applied(offset: int, topic: str = "counts", at: datetime = NOON_UTC) -> Applied:
    return Applied(event_id=f"e{offset}", occurred_at=at, topic=topic, offset=offset)


def test_first_change_creates_the_position() -> None:
    position = apply_change(None, CHANGE, applied(5))
    assert position is not None
    assert position.net_variance == -3
    assert position.exported_variance == 0
    assert position.last_counted_quantity == 7
    assert position.events_applied == 1
    assert position.applied_offsets == {"counts": 5}


def test_a_redelivered_event_changes_nothing() -> None:
    position = apply_change(None, CHANGE, applied(5))
    assert apply_change(position, CHANGE, applied(5)) is None


def test_an_event_delivered_after_later_ones_is_still_applied_once() -> None:
    position = apply_change(None, CHANGE, applied(5))
    late = apply_change(position, CHANGE, applied(4))
    assert late is not None
    assert late.net_variance == -6
    assert late.applied_offsets == {"counts": 5}
    assert late.recent_offsets == {"counts": [4, 5]}
    assert apply_change(late, CHANGE, applied(4)) is None


def test_offsets_older_than_the_remembered_ones_count_as_applied() -> None:
    position = None
    for offset in range(10, 10 + RECENT_OFFSETS):
        position = apply_change(position, CHANGE, applied(offset))
    assert position is not None
    assert apply_change(position, CHANGE, applied(9)) is None
    legacy = Position.from_json({**position.to_json(), "recent_offsets": {}})
    assert apply_change(legacy, CHANGE, applied(12)) is None  # the highest was a floor


def test_offsets_are_tracked_per_topic() -> None:
    position = apply_change(None, CHANGE, applied(5, "counts"))
    row = AdjustmentRow("VL-1", "927", "3410", 2, "254", date(2024, 2, 29), "Found", "1")
    exported = Change("STORE_1", "10017", "254", "3410", quantity=2, counted_quantity=None, row=row)
    after = apply_change(position, exported, applied(1, "variances"))
    assert after is not None
    assert after.net_variance == -1
    assert after.exported_variance == 2
    assert after.applied_offsets == {"counts": 5, "variances": 1}
    assert after.last_counted_quantity == 7  # a logged variance is not a count


def test_an_older_count_does_not_replace_the_last_counted_quantity() -> None:
    newer = apply_change(None, CHANGE, applied(5))
    older = Change("STORE_1", "10017", "254", "3410", quantity=0, counted_quantity=99, row=None)
    after = apply_change(newer, older, applied(6, at=NOON_UTC - timedelta(days=1)))
    assert after is not None
    assert after.last_counted_quantity == 7
    assert after.events_applied == 2


def test_positions_round_trip_through_json() -> None:
    position = apply_change(None, CHANGE, applied(5, at=datetime(2024, 1, 1, tzinfo=UTC)))
    assert position is not None
    assert Position.from_json(position.to_json()) == position
    assert position_key("STORE_1", "10017") == "STORE_1/10017"
