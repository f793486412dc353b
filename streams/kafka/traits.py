"""What each kind of broker offers, chosen once from its flavor.

The worker and the tools ask these traits rather than test the flavor, so that what
differs between Apache Kafka and Tansu is written down in one place (DESIGN sections 9
and 10).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.kafka.broker import BrokerFlavor


@dataclass(frozen=True, slots=True)
class BrokerTraits:
    flavor: BrokerFlavor
    # Transactions (and the idempotent producer): a newer producer with the same
    # transactional id fences an older one, and readers can skip what was aborted.
    transactions: bool
    # ListOffsets answers the true end of a partition (Tansu's is short after a batch of
    # several records, so its changelogs are ended before any recovery).
    exact_list_offsets: bool

    @classmethod
    def of(cls, flavor: BrokerFlavor) -> BrokerTraits:
        if flavor is BrokerFlavor.TANSU:
            return cls(flavor, transactions=False, exact_list_offsets=False)
        return cls(flavor, transactions=True, exact_list_offsets=True)
