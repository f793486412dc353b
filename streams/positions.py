"""Inventory positions: what variance-sync has applied per (facility, product).

Pure variance math. Idempotence lives here: a facility's events all sit on one partition
of each topic, and a position remembers which offsets of each topic it applied, so a
re-delivered event changes nothing. It keeps the highest one and the most recent few:
around a rebalance Faust can deliver an event only after later ones (it drops events
while recovery holds the stream, then seeks back), so "at or below the highest" alone
would wrongly take the late event for a re-delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from streams.routing import Change

# Enough for any reordering around one rebalance: a position sees few events per window.
RECENT_OFFSETS = 16


def position_key(facility_id: str, product_id: str) -> str:
    # Ids never contain '/', so the key is unambiguous and reads well in URLs.
    return f"{facility_id}/{product_id}"


@dataclass(frozen=True, slots=True)
class Position:
    facility_id: str
    product_id: str
    netsuite_location_id: str
    netsuite_item_id: str
    net_variance: int = 0
    exported_variance: int = 0
    last_counted_quantity: int | None = None
    last_counted_at: str | None = None
    last_event_id: str = ""
    last_event_at: str | None = None
    events_applied: int = 0
    applied_offsets: dict[str, int] = field(default_factory=dict)  # the highest, per topic
    recent_offsets: dict[str, list[int]] = field(default_factory=dict)  # ascending

    def to_json(self) -> dict[str, Any]:
        # Shallow: a position never changes its offset dicts or lists in place (see
        # `apply_change`), and `asdict`'s deep copy was a tenth of the hot path.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(Position))


@dataclass(frozen=True, slots=True)
class Applied:
    """Where an event came from, for idempotence and for the position's history."""

    event_id: str
    occurred_at: datetime
    topic: str
    offset: int
    moment: str = field(init=False)  # `occurred_at` as positions store it

    def __post_init__(self) -> None:
        # Once per event rather than once per line of a count.
        object.__setattr__(self, "moment", self.occurred_at.isoformat())


def already_applied(position: Position | None, source: Applied) -> bool:
    if position is None or source.offset > position.applied_offsets.get(source.topic, -1):
        return False
    recent = position.recent_offsets.get(source.topic)
    if recent is None:
        return True  # written before recent offsets were kept: the highest is a floor
    if source.offset in recent:
        return True
    # Below every offset still remembered, once older ones were forgotten: applied.
    return len(recent) >= RECENT_OFFSETS and source.offset < recent[0]


def remember(recent: list[int] | None, offset: int) -> list[int]:
    return sorted([*(recent or []), offset])[-RECENT_OFFSETS:]


def is_newer(moment: datetime, previous: str | None) -> bool:
    # Producers may deliver counts out of order; the latest count by time wins.
    return previous is None or moment >= datetime.fromisoformat(previous)


def apply_change(position: Position | None, change: Change, source: Applied) -> Position | None:
    """The position after `change`, or None when this event was already applied to it."""
    if already_applied(position, source):
        return None
    if position is None:
        position = Position(change.facility_id, change.product_id, "", "")
    counted = change.counted_quantity is not None and is_newer(
        source.occurred_at, position.last_counted_at
    )
    topic, offset = source.topic, source.offset
    # Built field by field rather than with `dataclasses.replace`, which costs as much
    # again: this runs once for every count line and logged variance.
    return Position(
        facility_id=position.facility_id,
        product_id=position.product_id,
        # The latest event names the current NetSuite ids (a store can be re-mapped).
        netsuite_location_id=change.location_id,
        netsuite_item_id=change.item_id,
        net_variance=position.net_variance + change.quantity,
        exported_variance=position.exported_variance + (change.quantity if change.exported else 0),
        last_counted_quantity=change.counted_quantity
        if counted
        else position.last_counted_quantity,
        last_counted_at=source.moment if counted else position.last_counted_at,
        last_event_id=source.event_id,
        last_event_at=source.moment,
        events_applied=position.events_applied + 1,
        applied_offsets={
            **position.applied_offsets,
            topic: max(offset, position.applied_offsets.get(topic, -1)),
        },
        recent_offsets={
            **position.recent_offsets,
            topic: remember(position.recent_offsets.get(topic), offset),
        },
    )
