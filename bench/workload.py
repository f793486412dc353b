"""The benchmark backlog: a realistic mix of store inventory events, and its expected rows.

"Events" are what NetSuite cares about: count lines and logged variances. 70 % of them
are count lines, arriving in approved counts of 50 to 250 lines; 30 % are logged
variances. They are spread over 200 stores and 20,000 products, drawn by the same
generator as `make run`'s sample traffic.

**Frozen** (issue 22), with B1b's agent (`bench.faust_count`): every figure in
docs/performance.md since then is of this backlog.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from schemas.models import CountApproved
from streams.config import NetSuiteConfig
from streams.core.routing import route_count, route_variance
from streams.devstack.sample import Catalog, SampleGenerator
from streams.producer.client import Event

FACILITIES = 200
PRODUCTS = 20_000
COUNT_SHARE = 0.7


@dataclass(frozen=True)
class Backlog:
    events: list[Event]
    domain_events: int  # count lines plus logged variances
    references: frozenset[str]  # Reference No / External Id of every CSV row expected

    @property
    def messages(self) -> int:
        return len(self.events)

    @property
    def rows(self) -> int:
        return len(self.references)


def facilities(count: int = FACILITIES) -> dict[str, str]:
    return {f"STORE_{n:03d}": str(1_000 + n) for n in range(count)}


def build_backlog(size: int, config: NetSuiteConfig, seed: int = 5) -> Backlog:
    """About `size` domain events (count lines plus variances), in publishing order."""
    rng = random.Random(seed)
    catalog = Catalog.build(facilities(), PRODUCTS, rng)
    generator = SampleGenerator(catalog, rng, lines_per_count=(50, 250))
    events: list[Event] = []
    lines = variances = 0
    while lines + variances < size:
        # Keep the running mix at 70/30 by events, whatever the count sizes drawn.
        if lines <= COUNT_SHARE * (lines + variances):
            count = generator.count()
            lines += len(count.lines)
            events.append(count)
        else:
            events.append(generator.variance())
            variances += 1
    references = frozenset(ref for event in events for ref in exported(event, config))
    return Backlog(events, lines + variances, references)


def exported(event: Event, config: NetSuiteConfig) -> list[str]:
    """The references of the CSV rows this event must produce, by the pure routing."""
    if isinstance(event, CountApproved):
        rows = route_count(event, config).rows
    else:
        rows = route_variance(event, config).rows
    return [row.reference for row in rows]
