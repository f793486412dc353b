"""Routing: a validated event becomes inventory changes and NetSuite feed rows.

Pure functions of the event and the config, so that a re-delivered event always yields
the same rows (the publish protocol relies on rebuilding a batch identically).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from schemas.models import CountApproved, CountLine, VarianceLogged
from sinks.rows import AdjustmentRow, FeedRow, TransferRow
from streams.config import NetSuiteConfig

SKIPPED = "SKIPPED"
# The reason under which count lines with a variance are analysed (HotWax's cycle counts).
CYCLE_COUNT = "CYCLE_COUNT"


class UnroutableEvent(Exception):
    """The event is valid on its own but cannot be mapped to NetSuite (a DLQ reason)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One product's inventory change at one facility, from one event."""

    facility_id: str
    product_id: str
    location_id: str
    item_id: str
    quantity: int
    counted_quantity: int | None
    row: FeedRow | None
    reason_id: str = CYCLE_COUNT  # a logged variance's reason; count lines: CYCLE_COUNT
    day: str = ""  # the retailer's business day of the event, YYYY-MM-DD

    @property
    def exported(self) -> bool:
        return self.row is not None


@dataclass(frozen=True, slots=True)
class Routed:
    changes: tuple[Change, ...]
    unexported_reason: str | None = None

    @property
    def rows(self) -> list[FeedRow]:
        return [change.row for change in self.changes if change.row is not None]


def local_date(moment: datetime, config: NetSuiteConfig) -> date:
    """The retailer's calendar date of `moment`, as NetSuite's Date column expects."""
    return moment.astimezone(config.zone).date()


def resolve_location(facility_id: str, carried: str | None, config: NetSuiteConfig) -> str:
    if carried:
        return carried
    try:
        return config.facilities[facility_id]
    except KeyError:
        raise UnroutableEvent(
            f"unknown facility {facility_id!r}: the event has no netsuite_location_id and "
            "[netsuite.facilities] does not map it"
        ) from None


def count_reference(event: CountApproved, line: CountLine) -> str:
    """Reference No of a count line. It starts with `<count_id>-`: NetSuite's acknowledgement
    script splits on `-` and reads the first part as the OMS count id."""
    if line.inventory_item_id and line.physical_inventory_id:
        return f"{event.count_id}-{line.inventory_item_id}-{line.physical_inventory_id}"
    return f"{event.count_id}-{line.product_id}"


def variance_reference(event: VarianceLogged) -> str:
    return f"VL-{event.event_id}"


def route_count(event: CountApproved, config: NetSuiteConfig) -> Routed:
    location = resolve_location(event.facility_id, event.netsuite_location_id, config)
    on = local_date(event.occurred_at, config)
    changes = []
    for line in event.lines:
        if line.decision_outcome == SKIPPED:
            continue
        row = None
        if line.variance_quantity != 0:
            row = AdjustmentRow(
                reference_no=count_reference(event, line),
                adjustment_account_id=config.adjustment_account_id,
                item_id=line.netsuite_item_id,
                quantity=line.variance_quantity,
                location_id=location,
                date=on,
                memo=config.cycle_count_memo,
                subsidiary_id=config.subsidiary_id,
            )
        changes.append(
            Change(
                facility_id=event.facility_id,
                product_id=line.product_id,
                location_id=location,
                item_id=line.netsuite_item_id,
                quantity=line.variance_quantity,
                counted_quantity=line.counted_quantity,
                row=row,
                day=on.isoformat(),
            )
        )
    return Routed(tuple(changes))


def route_variance(event: VarianceLogged, config: NetSuiteConfig) -> Routed:
    location = resolve_location(event.facility_id, event.netsuite_location_id, config)
    row = variance_row(event, location, config)
    change = Change(
        facility_id=event.facility_id,
        product_id=event.product_id,
        location_id=location,
        item_id=event.netsuite_item_id,
        quantity=event.quantity,
        counted_quantity=None,
        row=row,
        reason_id=event.reason_id,
        day=local_date(event.occurred_at, config).isoformat(),
    )
    unexported = None if row is not None else event.reason_id
    return Routed((change,), unexported_reason=unexported)


def variance_row(event: VarianceLogged, location: str, config: NetSuiteConfig) -> FeedRow | None:
    """The transfer row for a reason with a variance location, an adjustment row for any
    other synced reason, and nothing for reasons NetSuite does not track."""
    if event.reason_id not in config.synced_reasons:
        return None
    memo = event.reason_description or event.reason_id
    on = local_date(event.occurred_at, config)
    variance_location = config.variance_locations.get(event.reason_id)
    if variance_location is None:
        return AdjustmentRow(
            reference_no=variance_reference(event),
            adjustment_account_id=config.adjustment_account_id,
            item_id=event.netsuite_item_id,
            quantity=event.quantity,
            location_id=location,
            date=on,
            memo=memo,
            subsidiary_id=config.subsidiary_id,
        )
    # NetSuite transfers move a positive quantity; the sign picks the direction.
    source, target = (
        (location, variance_location) if event.quantity < 0 else (variance_location, location)
    )
    return TransferRow(
        external_id=variance_reference(event),
        item_id=event.netsuite_item_id,
        quantity=abs(event.quantity),
        from_location_id=source,
        to_location_id=target,
        date=on,
        memo=memo,
        subsidiary_id=config.subsidiary_id,
    )
