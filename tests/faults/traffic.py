"""Deterministic event streams with the NetSuite books they must produce.

The expectation comes from the same pure routing the worker uses, applied once per
distinct event: whatever a fault does to the pipeline, NetSuite must end up with exactly
these transactions and balances.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schemas.models import CountApproved, CountLine, VarianceLogged
from sinks.feeds import AdjustmentRow, FeedRow, TransferRow
from streams.config import NetSuiteConfig
from streams.core.routing import Change, route_count, route_variance
from streams.producer.client import Event

FACILITIES = ("STORE_1", "STORE_2")
UNMAPPED = "STORE_9"  # no [netsuite.facilities] entry: its events are unroutable
REASONS = ("VAR_LOST", "VAR_STOLEN", "VAR_DAMAGED", "VAR_FOUND", "VAR_SAMPLE")


@dataclass
class Expected:
    references: Counter[str] = field(default_factory=Counter)
    balances: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (facility, product) -> (net variance, exported variance), as the table must hold.
    positions: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    analytics: ExpectedAnalytics | None = None

    def apply(self, change: Change) -> None:
        key = (change.facility_id, change.product_id)
        net, exported = self.positions.get(key, (0, 0))
        quantity = change.quantity
        self.positions[key] = (net + quantity, exported + (quantity if change.exported else 0))

    def add(self, row: FeedRow) -> None:
        if isinstance(row, AdjustmentRow):
            self.references[row.reference_no] += 1
            self.balances[(row.location_id, row.item_id)] += row.quantity
        elif isinstance(row, TransferRow):
            self.references[row.external_id] += 1
            self.balances[(row.from_location_id, row.item_id)] -= row.quantity
            self.balances[(row.to_location_id, row.item_id)] += row.quantity

    def nonzero_balances(self) -> dict[tuple[str, str], int]:
        return {key: value for key, value in self.balances.items() if value}


@dataclass
class ExpectedAnalytics:
    """What `variance-sync report` must say, folded here from the distinct events alone
    (not through the worker's routing): units and events per (facility, product, reason,
    day), and lines counted and matched per (facility, product, day)."""

    zone: ZoneInfo
    variances: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)
    counted: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def fold(self, event: Event) -> None:
        if event.event_id in self._seen:
            return  # a producer's duplicate
        self._seen.add(event.event_id)
        day = event.occurred_at.astimezone(self.zone).date().isoformat()
        if isinstance(event, VarianceLogged):
            self._add(
                self.variances,
                (event.facility_id, event.product_id, event.reason_id, day),
                event.quantity,
                1,
            )
            return
        for line in event.lines:
            if line.decision_outcome == "SKIPPED":
                continue
            if line.variance_quantity:
                key = (event.facility_id, line.product_id, "CYCLE_COUNT", day)
                self._add(self.variances, key, line.variance_quantity, 1)
            self._add(
                self.counted,
                (event.facility_id, line.product_id, day),
                1,
                int(line.variance_quantity == 0),
            )

    @staticmethod
    def _add(into: dict[Any, list[int]], key: Any, first: int, second: int) -> None:
        totals = into.setdefault(key, [0, 0])
        totals[0] += first
        totals[1] += second

    def report(self) -> list[dict[str, Any]]:
        """As `report --json --by facility,product,reason,day` prints it."""
        names = ("facility_id", "product_id", "reason_id", "day")
        return [
            {**dict(zip(names, key, strict=True)), "units": units, "events": events}
            for key, (units, events) in sorted(self.variances.items())
        ]

    def accuracy(self) -> list[dict[str, Any]]:
        """As `report --accuracy --json --by facility,product,day` prints it."""
        names = ("facility_id", "product_id", "day")
        return [
            {
                **dict(zip(names, key, strict=True)),
                "counted": counted,
                "matched": matched,
                "accuracy": round(matched / counted, 4),
            }
            for key, (counted, matched) in sorted(self.counted.items())
        ]


@dataclass
class Traffic:
    """Events over two stores and `products` products (40: most positions see a few
    events; 2: each sees many), with a fixed seed."""

    netsuite: NetSuiteConfig
    seed: int
    prefix: str = "t"
    products: int = 40
    _rng: random.Random = field(init=False)
    _made: int = field(default=0, init=False)
    bad_ids: list[str] = field(default_factory=list, init=False)  # from `bad_events`

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - test data

    def events(self, count: int) -> list[Event]:
        return [self.next_event() for _ in range(count)]

    def bad_events(self, count: int) -> list[Event]:
        """Valid variances from a store no config maps: each must be dead-lettered once."""
        bad = []
        for _ in range(count):
            event = self.next_event().model_copy(update={"facility_id": UNMAPPED})
            bad.append(event)
        self.bad_ids += [event.event_id for event in bad]
        return bad

    def next_event(self) -> Event:
        self._made += 1
        event_id = f"{self.prefix}{self.seed}-{self._made}"
        facility = self._rng.choice(FACILITIES)
        at = datetime(2024, 2, 29, 18, tzinfo=UTC) + timedelta(seconds=self._made)
        if self._rng.random() < 0.3:
            return self._count(event_id, facility, at)
        return self._variance(event_id, facility, at)

    def _product(self) -> tuple[str, str]:
        number = self._rng.randrange(self.products)
        return str(10_000 + number), str(3_000 + number)

    def _count(self, event_id: str, facility: str, at: datetime) -> CountApproved:
        products = dict(self._product() for _ in range(self._rng.randint(2, 8)))
        lines = []
        for product, item in products.items():
            system = self._rng.randint(0, 30)
            counted = max(0, system + self._rng.randint(-2, 2))
            lines.append(
                CountLine(
                    product_id=product,
                    netsuite_item_id=item,
                    counted_quantity=counted,
                    system_quantity=system,
                    variance_quantity=counted - system,
                )
            )
        return CountApproved(
            event_id=event_id,
            occurred_at=at,
            facility_id=facility,
            count_id=f"CC{self._made}",
            approved_by="manager",
            lines=tuple(lines),
        )

    def _variance(self, event_id: str, facility: str, at: datetime) -> VarianceLogged:
        product, item = self._product()
        reason = self._rng.choice(REASONS)
        size = self._rng.randint(1, 5)
        return VarianceLogged(
            event_id=event_id,
            occurred_at=at,
            facility_id=facility,
            product_id=product,
            netsuite_item_id=item,
            quantity=size if reason == "VAR_FOUND" else -size,
            reason_id=reason,
            reason_description=reason.title(),
            logged_by="associate",
        )

    def expected(self, events: list[Event]) -> Expected:
        """The books after importing every distinct event once."""
        analytics = ExpectedAnalytics(self.netsuite.zone)
        expected = Expected(analytics=analytics)
        seen: set[str] = set()
        for event in events:
            if event.event_id in seen or event.facility_id == UNMAPPED:
                continue
            seen.add(event.event_id)
            analytics.fold(event)
            routed = (
                route_count(event, self.netsuite)
                if isinstance(event, CountApproved)
                else route_variance(event, self.netsuite)
            )
            for row in routed.rows:
                expected.add(row)
            for change in routed.changes:
                expected.apply(change)
        return expected
