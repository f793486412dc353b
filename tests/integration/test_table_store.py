"""The tables' local RocksDB store against a real broker: it only ever holds what the
changelog acknowledged, so a worker killed at any moment restarts on a prefix of its
changelog (docs/table-protocol.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

from sinks.feeds import ADJUSTMENT
from streams.config import KafkaConfig
from streams.core.pending import SourceRegistry
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import BrokerFlavor
from streams.kafka.traits import BrokerTraits
from streams.worker.changelog_writer import ChangelogWriter
from streams.worker.tables import WrittenThroughTable, register_tables
from tests.fixtures.broker import broker, traits_of

__all__ = ["broker"]

KAFKA = BrokerFlavor.KAFKA


def tables(data_dir: Path, writer: ChangelogWriter | None = None) -> WrittenThroughTable:
    """The inventory table on `data_dir`; without a writer, only to look at its store."""
    app = faust.App("table-store-test", datadir=str(data_dir), store="rocksdb://")
    writer = writer or ChangelogWriter(KafkaConfig(), SourceRegistry({}), BrokerTraits.of(KAFKA))
    inventory, _ = register_tables(app, 1, writer)
    return inventory


async def scenario(bootstrap: str, data_dir: Path, traits: BrokerTraits) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics(
        [NewTopic(f"table-store-test-{name}-changelog", 1, 1) for name in ("inventory", "progress")]
    )
    await admin.close()
    writer = ChangelogWriter(
        KafkaConfig(bootstrap=bootstrap), SourceRegistry({"t": (ADJUSTMENT,)}), traits
    )
    try:
        table = tables(data_dir, writer)
        await writer.claim({0})
        changelog = TP(table.changelog_topic_name, 0)
        table.put("STORE_1/1", {"net_variance": -1}, 0)
        await writer.flush(0)
        table.put("STORE_1/1", {"net_variance": -3}, 0)
        table.put("STORE_1/2", {"net_variance": 5}, 0)
        # Not acknowledged yet: readers see the writes, the store does not hold them.
        assert table.get("STORE_1/1") == {"net_variance": -3}
        assert "STORE_1/2" in table
        assert table.data.get("STORE_1/1") == {"net_variance": -1}
        assert table.data.get("STORE_1/2") is None
        first = table.data.persisted_offset(changelog)
        assert first is not None
        assert table.unacked_writes == 2
        await table.data.stop()
        # A worker killed now restarts on this folder: it holds only the first write.
        reopened = tables(data_dir)
        assert reopened.data.persisted_offset(changelog) == first  # opens the partition's db
        assert reopened.data.get("STORE_1/1") == {"net_variance": -1}
        assert reopened.data.get("STORE_1/2") is None
        await reopened.data.stop()
        # Acknowledged: the store holds the writes and recovers from after them.
        await writer.flush(0)
        assert table.unacked_writes == 0
        await table.data.stop()
        survivor = tables(data_dir)
        assert (survivor.data.persisted_offset(changelog) or -1) > first
        assert survivor.data.get("STORE_1/1") == {"net_variance": -3}
        assert survivor.data.get("STORE_1/2") == {"net_variance": 5}
        await survivor.data.stop()
    finally:
        await writer.stop()


def test_the_store_holds_only_what_the_changelog_acknowledged(
    broker: LocalBroker, tmp_path: Path
) -> None:
    asyncio.run(scenario(broker.bootstrap, tmp_path / "worker", traits_of(broker)))
