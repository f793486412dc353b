"""The benchmark backlog: a realistic mix of store inventory events, and its expected rows.

"Events" are what NetSuite cares about: count lines and logged variances. 70 % of them
are count lines, arriving in approved counts of 50 to 250 lines; 30 % are logged
variances. They are spread over 200 stores and 20,000 products.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.models import CountApproved, CountLine, VarianceLogged
from sinks.rows import AdjustmentRow
from streams.config import NetSuiteConfig
from streams.devstack.sample import INCREASING, REASONS
from streams.producer import Event
from streams.routing import route_count, route_variance

FACILITIES = 200
PRODUCTS = 20_000
COUNT_SHARE = 0.7


@dataclass(frozen=True)
class Backlog:
    events: list[Event]
    domain_events: int  # count lines plus logged variances
    references: frozenset[str]  # Reference No / External Id of every CSV row expected

    @property
    def rows(self) -> int:
        return len(self.references)

    @property
    def messages(self) -> int:
        return len(self.events)


def facilities() -> dict[str, str]:
    return {f"STORE_{n:03d}": str(1_000 + n) for n in range(FACILITIES)}


def build_backlog(size: int, config: NetSuiteConfig, seed: int = 5) -> Backlog:
    """About `size` domain events (count lines plus variances), in publishing order."""
    rng = random.Random(seed)
    stores = sorted(facilities())
    events: list[Event] = []
    lines = variances = 0
    while lines + variances < size:
        # Keep the running mix at 70/30 by events, whatever the count sizes drawn.
        if lines <= COUNT_SHARE * (lines + variances):
            count = _count(rng, rng.choice(stores), f"CC{100_000 + len(events)}")
            lines += len(count.lines)
            events.append(count)
        else:
            events.append(_variance(rng, rng.choice(stores)))
            variances += 1
    references = frozenset(ref for event in events for ref in exported(event, config))
    return Backlog(events, lines + variances, references)


def exported(event: Event, config: NetSuiteConfig) -> list[str]:
    """The references of the CSV rows this event must produce, by the pure routing."""
    if isinstance(event, CountApproved):
        rows = route_count(event, config).rows
    else:
        rows = route_variance(event, config).rows
    return [row.reference_no if isinstance(row, AdjustmentRow) else row.external_id for row in rows]


def _product(rng: random.Random, index: int | None = None) -> tuple[str, str]:
    n = rng.randrange(PRODUCTS) if index is None else index
    return str(100_000 + n), str(500_000 + n)


def _count(rng: random.Random, facility: str, count_id: str) -> CountApproved:
    chosen = rng.sample(range(PRODUCTS), k=rng.randint(50, 250))
    lines = []
    for index in chosen:
        product_id, item_id = _product(rng, index)
        system = rng.randint(0, 60)
        counted = max(0, system + (0 if rng.random() < 0.6 else rng.randint(-3, 3)))
        lines.append(
            CountLine(
                product_id=product_id,
                netsuite_item_id=item_id,
                counted_quantity=counted,
                system_quantity=system,
                variance_quantity=counted - system,
            )
        )
    return CountApproved(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        occurred_at=datetime.now(UTC),
        facility_id=facility,
        count_id=count_id,
        approved_by="store.manager",
        lines=tuple(lines),
    )


def _variance(rng: random.Random, facility: str) -> VarianceLogged:
    product_id, item_id = _product(rng)
    reason = rng.choice(sorted(REASONS))
    size = rng.randint(1, 6)
    return VarianceLogged(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        occurred_at=datetime.now(UTC),
        facility_id=facility,
        product_id=product_id,
        netsuite_item_id=item_id,
        quantity=size if reason in INCREASING else -size,
        reason_id=reason,
        reason_description=REASONS[reason],
        comments="logged from the store app",
        logged_by="store.associate",
    )
