"""What each kind of broker offers, chosen once from its flavor.

The worker and the tools ask these traits rather than test the flavor, so that what
differs between Apache Kafka and Tansu is written down in one place (DESIGN sections 9
and 10, docs/kafka.md "Differences that matter").
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.kafka.broker import BrokerFlavor


@dataclass(frozen=True, slots=True)
class BrokerTraits:
    flavor: BrokerFlavor
    # Transactions: a newer producer with the same transactional id fences an older one,
    # and readers can skip what was aborted. Tansu has none.
    transactions: bool
    # ListOffsets answers the true end of a partition. Tansu's is short after a batch of
    # several records (the last batch's base offset + 1), so its changelogs are ended
    # with a single-record batch before any recovery.
    exact_list_offsets: bool
    # The idempotent producer: the broker drops a retried send it already stored. Tansu
    # rejects InitProducerId, so there producers are plain (the worker dedupes by
    # event_id all the same).
    idempotence: bool
    # DescribeGroups may list a member after it left: Tansu never expires one, and keeps a
    # member that stopped in its first generation (aiokafka leaves only from generation 1).
    # There a listed member does not prove a running worker.
    stale_group_members: bool
    # A group join waits the full rebalance timeout, not just until the members joined
    # (Tansu): dev and the tests shorten the group timeouts.
    slow_group_joins: bool

    @classmethod
    def of(cls, flavor: BrokerFlavor) -> BrokerTraits:
        kafka = flavor is BrokerFlavor.KAFKA
        return cls(
            flavor,
            transactions=kafka,
            exact_list_offsets=kafka,
            idempotence=kafka,
            stale_group_members=not kafka,
            slow_group_joins=not kafka,
        )
