"""Inventory positions: what variance-sync has applied per (facility, product).

Pure variance math. Idempotence lives here too, exactly and per position: a position
names every event applied to it, with the coordinates of the copy that was applied, so
whatever order events arrive in (Faust re-delivers at every rebalance, and can deliver an
event after later ones), a second delivery of the same copy changes nothing, and another
copy of the same event (a producer's duplicate) is recognised as one.

The names are pruned when the position is written, so a position stays small: an entry
goes once its event is below its source partition's *durable floor* (every event there is
fully processed and acked, and a floor record saying so is in the changelog, so it is
never applied again, see `streams.core.progress`) **and** it is older than the duplicate
horizon (`dedupe.horizon_days`), after which a producer's copy of it is no longer
recognised. Two bounds keep a position below the broker's record size whatever the
horizon: analytics days older than `dedupe.analytics_retention_days` before the event's
own day are dropped, and past `dedupe.max_applied_events` names the oldest ones below the
floor go regardless of the horizon (docs/table-protocol.md, "Bounded positions").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from streams.core.routing import Change

# event id -> [topic, offset, record time in ms] of the copy applied to the position.
Entries = dict[str, list[Any]]


def position_key(facility_id: str, product_id: str) -> str:
    # Ids never contain '/', so the key is unambiguous and reads well in URLs.
    return f"{facility_id}/{product_id}"


@dataclass(frozen=True, slots=True)
class Applied:
    """Which copy of an event is being applied: its id, where it came from, and when."""

    event_id: str
    occurred_at: datetime
    topic: str
    offset: int
    at_ms: int  # the record's timestamp: what the horizon is measured against
    moment: str = field(init=False)  # `occurred_at` as positions store it

    def __post_init__(self) -> None:
        # Once per event rather than once per line of a count.
        object.__setattr__(self, "moment", self.occurred_at.isoformat())


@dataclass(frozen=True, slots=True)
class PositionLimits:
    """Bounds on what one position keeps. 0: no bound."""

    analytics_days: int = 0  # analytics days kept before the day of the event applied
    max_entries: int = 0  # names of applied copies kept, however young


@dataclass(frozen=True, slots=True)
class Pruning:
    """What may be forgotten: entries below their topic's durable floor and older than
    `before_ms` (0: none by age), and what `limits` leave out."""

    floors: Mapping[str, int]  # topic -> durable floor of this position's source partition
    before_ms: int
    limits: PositionLimits = field(default_factory=PositionLimits)

    def below_floor(self, entry: list[Any]) -> bool:
        topic, offset, _ = entry
        floor = self.floors.get(topic)
        return floor is not None and offset < floor

    def keeps(self, entry: list[Any]) -> bool:
        return not self.below_floor(entry) or entry[2] >= self.before_ms

    def entries(self, current: Entries) -> Entries:
        """The names kept: young or above the floor, then at most `max_entries` of them,
        the oldest below the floor going first (never one above it)."""
        if not current:
            return {}  # a new position, the common case in a physical inventory
        kept = {k: v for k, v in current.items() if self.keeps(v)}
        bound = self.limits.max_entries
        if bound and len(kept) >= bound:
            excess = len(kept) - bound + 1  # room for the entry being added
            old = sorted((v[2], v[1], k) for k, v in kept.items() if self.below_floor(v))
            for _, _, event_id in old[:excess]:
                del kept[event_id]
        return kept


KEEP_ALL = Pruning({}, 0)


def may_have_forgotten(
    entry: list[Any], named: Entries, horizon_ms: int, limits: PositionLimits
) -> bool:
    """Whether a position that names `named` may have forgotten `entry`, whatever floors
    its worker had: only an entry older than the horizon before the newest it names, or
    any below the floor once it names as many as it may."""
    if limits.max_entries and len(named) >= limits.max_entries:
        return True
    newest = max((other[2] for other in named.values()), default=None)
    return horizon_ms > 0 and newest is not None and entry[2] < newest - horizon_ms


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
    applied_events: Entries = field(default_factory=dict)
    # Variance analytics, exactly once with the position itself (`streams.core.analytics`):
    # "<reason>|<day>" -> [units, events]; "#counted|<day>" -> [lines counted, matched].
    analytics: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Shallow: a position never changes its entries in place (see `apply_change`),
        # and `asdict`'s deep copy was a tenth of the hot path.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        return cls(**data)

    def applied_copy(self, event_id: str) -> tuple[str, int] | None:
        """The (topic, offset) of the copy of `event_id` applied here, if any."""
        entry = self.applied_events.get(event_id)
        return None if entry is None else (entry[0], entry[1])


_FIELDS = tuple(f.name for f in fields(Position))


def is_newer(moment: datetime, previous: str | None) -> bool:
    # Producers may deliver counts out of order; the latest count by time wins.
    return previous is None or moment >= datetime.fromisoformat(previous)


def apply_change(
    position: Position | None, change: Change, source: Applied, pruning: Pruning = KEEP_ALL
) -> Position:
    """The position after `change`. The caller has checked that `source.event_id` is not
    applied to it yet (`Position.applied_copy`)."""
    if position is None:
        position = Position(change.facility_id, change.product_id, "", "")
    counted = change.counted_quantity is not None and is_newer(
        source.occurred_at, position.last_counted_at
    )
    entries = pruning.entries(position.applied_events)
    entries[source.event_id] = [source.topic, source.offset, source.at_ms]
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
        applied_events=entries,
        analytics=tally(position.analytics, change, pruning.limits.analytics_days),
    )


COUNTED = "#counted"


def _recent(analytics: Mapping[str, list[int]], day: str, keep_days: int) -> dict[str, list[int]]:
    if not day or not analytics:
        return dict(analytics)
    first = _first_kept_day(day, keep_days)
    return {key: value for key, value in analytics.items() if key.rpartition("|")[2] >= first}


@functools.lru_cache(maxsize=1024)
def _first_kept_day(day: str, keep_days: int) -> str:
    # A backlog holds few distinct days and one keep_days: parse each once.
    return (date.fromisoformat(day) - timedelta(days=keep_days)).isoformat()


def tally(
    analytics: Mapping[str, list[int]], change: Change, keep_days: int = 0
) -> dict[str, list[int]]:
    """The analytics after `change`: its units and one event under its reason and day, and
    for a count line, one line counted (matched when it found no variance). With
    `keep_days`, days more than that before the change's own day are dropped: a function
    of the events alone, so every replay keeps the same days."""
    found = dict(analytics) if not keep_days else _recent(analytics, change.day, keep_days)
    if change.quantity != 0:
        units, events = found.get(f"{change.reason_id}|{change.day}", (0, 0))
        found[f"{change.reason_id}|{change.day}"] = [units + change.quantity, events + 1]
    if change.counted_quantity is not None:
        counted, matched = found.get(f"{COUNTED}|{change.day}", (0, 0))
        found[f"{COUNTED}|{change.day}"] = [counted + 1, matched + (change.quantity == 0)]
    return found


def horizon_warning(dlq_retention_ms: int | None, horizon_days: float) -> str | None:
    """Why the duplicate horizon is shorter than a re-drive can reach back, if it is: a
    re-driven copy of an event whose other copy was applied longer ago than the horizon
    (a copy dead-lettered as unroutable, then the config fixed) would apply again."""
    if dlq_retention_ms is None or horizon_days == 0:
        return None
    horizon_ms = horizon_days * 86_400_000
    if dlq_retention_ms != -1 and dlq_retention_ms <= horizon_ms:
        return None
    kept = "forever" if dlq_retention_ms == -1 else f"{dlq_retention_ms / 86_400_000:g} days"
    return (
        f"the DLQ keeps records {kept}, longer than [dedupe] horizon_days "
        f"({horizon_days:g}): a re-drive of an older copy of an applied event would apply it "
        "again; raise horizon_days, or re-drive only dead letters younger than it"
    )
