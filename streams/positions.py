"""Inventory positions: what variance-sync has applied per (facility, product).

Pure variance math. Idempotence lives here: a position remembers the last offset it
applied from each source topic, and a facility's events all sit on one partition of
each topic, so an event at or below that offset is a re-delivery and changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from streams.routing import Change


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
    applied_offsets: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Applied:
    """Where an event came from, for idempotence and for the position's history."""

    event_id: str
    occurred_at: datetime
    topic: str
    offset: int


def already_applied(position: Position | None, source: Applied) -> bool:
    if position is None:
        return False
    return source.offset <= position.applied_offsets.get(source.topic, -1)


def is_newer(moment: datetime, previous: str | None) -> bool:
    # Producers may deliver counts out of order; the latest count by time wins.
    return previous is None or moment >= datetime.fromisoformat(previous)


def apply_change(position: Position | None, change: Change, source: Applied) -> Position | None:
    """The position after `change`, or None when this event was already applied to it."""
    if already_applied(position, source):
        return None
    if position is None:
        position = Position(
            facility_id=change.facility_id,
            product_id=change.product_id,
            netsuite_location_id=change.location_id,
            netsuite_item_id=change.item_id,
        )
    moment = source.occurred_at.isoformat()
    counted = change.counted_quantity is not None and is_newer(
        source.occurred_at, position.last_counted_at
    )
    return replace(
        position,
        # The latest event names the current NetSuite ids (a store can be re-mapped).
        netsuite_location_id=change.location_id,
        netsuite_item_id=change.item_id,
        net_variance=position.net_variance + change.quantity,
        exported_variance=position.exported_variance + (change.quantity if change.exported else 0),
        last_counted_quantity=change.counted_quantity
        if counted
        else position.last_counted_quantity,
        last_counted_at=moment if counted else position.last_counted_at,
        last_event_id=source.event_id,
        last_event_at=moment,
        events_applied=position.events_applied + 1,
        applied_offsets={**position.applied_offsets, source.topic: source.offset},
    )
