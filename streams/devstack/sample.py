"""Sample traffic for `variance-sync dev`: cycle counts and logged variances at stores.

Counts mostly match the system quantity, as real ones do; the variances use the OMS
reason ids, including ones NetSuite does not track (they update the table only).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.models import CountApproved, CountLine, VarianceLogged
from streams.producer.client import Event, VarianceProducer

REASONS = {
    "VAR_LOST": "Lost",
    "VAR_STOLEN": "Stolen",
    "VAR_DAMAGED": "Damaged",
    "VAR_FOUND": "Found",
    "VAR_SAMPLE": "Given away as a sample",
    "VAR_MANUAL": "Manual correction",
}
INCREASING = {"VAR_FOUND"}


@dataclass
class Catalog:
    facilities: dict[str, str]
    products: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, facilities: dict[str, str], size: int, rng: random.Random) -> Catalog:
        first = rng.randint(10_000, 20_000)
        products = [(str(first + i), str(3_000 + i)) for i in range(size)]
        return cls(facilities, products)


@dataclass
class SampleGenerator:
    catalog: Catalog
    rng: random.Random
    counts_made: int = 0
    lines_per_count: tuple[int, int] = (5, 40)

    def __post_init__(self) -> None:
        self._run_id = self.rng.randint(1_000, 9_999)

    def next_event(self) -> Event:
        if self.rng.random() < 0.3:
            return self.count()
        return self.variance()

    def _store(self) -> tuple[str, str | None]:
        facility = self.rng.choice(sorted(self.catalog.facilities))
        # Some OMS services send the NetSuite location, others rely on the facility map.
        location = self.catalog.facilities[facility] if self.rng.random() < 0.5 else None
        return facility, location

    def count(self) -> CountApproved:
        facility, location = self._store()
        self.counts_made += 1
        products = self.rng.sample(self.catalog.products, k=self.rng.randint(*self.lines_per_count))
        lines = []
        for product_id, item_id in products:
            system = self.rng.randint(0, 60)
            drift = 0 if self.rng.random() < 0.7 else self.rng.randint(-3, 3)
            counted = max(0, system + drift)
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
            event_id=str(uuid.UUID(int=self.rng.getrandbits(128))),
            occurred_at=datetime.now(UTC),
            facility_id=facility,
            netsuite_location_id=location,
            # Unique within a generator (so are the Reference Nos), and unlike the last
            # run's: the simulator's books under var/ outlive a `make run`.
            count_id=f"CC{self._run_id}{self.counts_made:05d}",
            approved_by="store.manager",
            lines=tuple(lines),
        )

    def variance(self) -> VarianceLogged:
        facility, location = self._store()
        product_id, item_id = self.rng.choice(self.catalog.products)
        reason = self.rng.choice(sorted(REASONS))
        size = self.rng.randint(1, 6)
        return VarianceLogged(
            event_id=str(uuid.UUID(int=self.rng.getrandbits(128))),
            occurred_at=datetime.now(UTC),
            facility_id=facility,
            netsuite_location_id=location,
            product_id=product_id,
            netsuite_item_id=item_id,
            quantity=size if reason in INCREASING else -size,
            reason_id=reason,
            reason_description=REASONS[reason],
            comments="logged from the store app",
            logged_by="store.associate",
        )


async def run_sample_traffic(
    producer: VarianceProducer, generator: SampleGenerator, interval: float = 1.0
) -> None:
    """Publish one event every `interval` seconds until cancelled."""
    while True:
        await producer.publish(generator.next_event())
        await asyncio.sleep(interval * generator.rng.uniform(0.5, 1.5))
