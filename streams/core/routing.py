"""Routing: a validated event becomes inventory changes and NetSuite feed rows.

Pure functions of the event and the config, so that a re-delivered event always yields
the same rows (the publish protocol relies on rebuilding a batch identically).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from schemas.models import CountApproved, CountLine, EventKind, VarianceLogged
from sinks.feeds import FEEDS, FeedExport, FeedRegistry, FeedRow, RowFacts
from streams.config import NetSuiteConfig
from streams.errors import StreamsError

SKIPPED = "SKIPPED"
# The reason under which count lines with a variance are analysed (HotWax's cycle counts).
CYCLE_COUNT = "CYCLE_COUNT"


class UnroutableEvent(StreamsError):
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
    export: FeedExport | None
    reason_id: str = CYCLE_COUNT  # a logged variance's reason; count lines: CYCLE_COUNT
    day: str = ""  # the retailer's business day of the event, YYYY-MM-DD

    @property
    def exported(self) -> bool:
        return self.export is not None


@dataclass(frozen=True, slots=True)
class Routed:
    changes: tuple[Change, ...]
    unexported_reason: str | None = None

    @property
    def exports(self) -> list[FeedExport]:
        return [change.export for change in self.changes if change.export is not None]

    @property
    def rows(self) -> list[FeedRow]:
        return [export.row for export in self.exports]


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


def route_count(
    event: CountApproved, config: NetSuiteConfig, feeds: FeedRegistry = FEEDS
) -> Routed:
    location = resolve_location(event.facility_id, event.netsuite_location_id, config)
    on = local_date(event.occurred_at, config)
    changes = []
    for line in event.lines:
        if line.decision_outcome == SKIPPED:
            continue
        export = None
        if line.variance_quantity != 0:
            facts = RowFacts(
                kind=EventKind.COUNT_APPROVED,
                reason_id=CYCLE_COUNT,
                reference=count_reference(event, line),
                item_id=line.netsuite_item_id,
                quantity=line.variance_quantity,
                location_id=location,
                on=on,
                memo=config.cycle_count_memo,
                adjustment_account_id=config.adjustment_account_id,
                subsidiary_id=config.subsidiary_id,
            )
            export = feed_export(facts, feeds)
        changes.append(
            Change(
                facility_id=event.facility_id,
                product_id=line.product_id,
                location_id=location,
                item_id=line.netsuite_item_id,
                quantity=line.variance_quantity,
                counted_quantity=line.counted_quantity,
                export=export,
                day=on.isoformat(),
            )
        )
    return Routed(tuple(changes))


def route_variance(
    event: VarianceLogged, config: NetSuiteConfig, feeds: FeedRegistry = FEEDS
) -> Routed:
    location = resolve_location(event.facility_id, event.netsuite_location_id, config)
    on = local_date(event.occurred_at, config)
    export = None
    # Reasons NetSuite does not track change the table only.
    if event.reason_id in config.synced_reasons:
        variance_location = config.variance_locations.get(event.reason_id)
        if variance_location == location:
            # A transfer from a location to itself: NetSuite refuses it, and with it the
            # whole file, every other row included.
            raise UnroutableEvent(
                f"reason {event.reason_id!r} moves stock to location {location}, which is "
                "the event's own location: a transfer needs two locations"
            )
        facts = RowFacts(
            kind=EventKind.VARIANCE_LOGGED,
            reason_id=event.reason_id,
            reference=variance_reference(event),
            item_id=event.netsuite_item_id,
            quantity=event.quantity,
            location_id=location,
            on=on,
            memo=event.reason_description or event.reason_id,
            adjustment_account_id=config.adjustment_account_id,
            subsidiary_id=config.subsidiary_id,
            variance_location_id=variance_location,
        )
        export = feed_export(facts, feeds)
    change = Change(
        facility_id=event.facility_id,
        product_id=event.product_id,
        location_id=location,
        item_id=event.netsuite_item_id,
        quantity=event.quantity,
        counted_quantity=None,
        export=export,
        reason_id=event.reason_id,
        day=on.isoformat(),
    )
    unexported = None if export is not None else event.reason_id
    return Routed((change,), unexported_reason=unexported)


def feed_export(facts: RowFacts, feeds: FeedRegistry) -> FeedExport:
    """The row for `facts` in the feed that claims it; unroutable when none does."""
    feed = feeds.route(facts)
    if feed is None:
        raise UnroutableEvent(
            f"no NetSuite feed takes {facts.reference} (reason {facts.reason_id}); "
            f"feeds: {', '.join(feeds.names())}"
        )
    return FeedExport(feed, feed.row(facts))
