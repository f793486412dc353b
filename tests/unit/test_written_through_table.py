"""Writes that no open changelog log will flush are forgotten before a reassignment, and
a stopping table refuses reads.

A partition released at a revoke while its flush failed (its leader killed) kept its
writes in the tables' memory, and Faust, assigning the same partition again, left the
tables as they were: the re-delivered event was taken for applied and never written to
the changelog (tests/faults/test_cluster.py, seen once in CI)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from streams.config import KafkaConfig
from streams.core.pending import SourceRegistry
from streams.kafka.broker import BrokerFlavor
from streams.kafka.traits import BrokerTraits
from streams.worker import changelog_producers
from streams.worker.changelog_writer import LINGER_SECONDS, ChangelogWriter
from streams.worker.tables import TableStopped, register_tables


class Writer:
    """The changelog writer as the tables use it; `open` are the partitions it holds."""

    def __init__(self, open_partitions: set[int]) -> None:
        self.open = open_partitions
        self.appended: list[tuple[str, int]] = []

    def register(self, topic: str, on_persisted: Any) -> None:
        pass

    def append(self, topic: str, partition: int, key: Any, value: Any, tag: Any = None) -> None:
        self.appended.append((topic, partition))

    def claimed(self, partition: int) -> bool:
        return partition in self.open


def test_writes_of_a_released_partition_are_forgotten_and_the_others_kept() -> None:
    writer = Writer({0, 1})
    app = faust.App("unclaimed-test", store="memory://")
    inventory, progress = register_tables(app, 2, writer)  # type: ignore[arg-type]
    inventory.put("STORE_1/1", {"events_applied": 1}, 0)
    inventory.put("STORE_2/1", {"events_applied": 2}, 1)
    progress.put("t:1", {"floor": 9}, 1)
    writer.open = {0}  # partition 1 released; its last flush failed
    for table in (inventory, progress):
        table.forget_unclaimed()
    assert inventory.get("STORE_1/1") == {"events_applied": 1}
    assert inventory.get("STORE_2/1") is None
    assert progress.get("t:1") is None
    assert inventory.unacked_writes == 1


class UnansweredProducer:
    """A transactional producer whose batches the broker never answers (leader killed)."""

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def begin_transaction(self) -> None:
        pass

    async def send_batch(self, *_: Any, **__: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def abort_transaction(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def no_ends(*_: Any) -> None:
    pass


async def test_a_release_cutting_a_flush_short_leaves_writes_that_are_then_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changelog_producers, "AIOKafkaProducer", UnansweredProducer)
    monkeypatch.setattr(changelog_producers, "end_partitions", no_ends)
    writer = ChangelogWriter(KafkaConfig(), SourceRegistry({}), BrokerTraits.of(BrokerFlavor.KAFKA))
    app = faust.App("unclaimed-release-test", store="memory://")
    inventory, _ = register_tables(app, 1, writer)
    await writer.claim({0})
    inventory.put("STORE_2/10039", {"events_applied": 2}, 0)
    await asyncio.sleep(LINGER_SECONDS * 4)  # its flush is in flight
    await writer.release({0})  # the revoke of a rejoin: nobody is told the flush failed
    assert inventory.get("STORE_2/10039") == {"events_applied": 2}  # never in the changelog
    inventory.forget_unclaimed()  # as the next assignment does, before claiming again
    assert inventory.get("STORE_2/10039") is None
    assert inventory.unacked_writes == 0


async def test_a_stopping_table_refuses_reads_from_its_store() -> None:
    # RocksDB's store, once stopped, answers "missing" for every key: an event still in
    # flight would take that for a fresh position and write it over the real one.
    writer = Writer({0})
    app = faust.App("stopping-table-test", store="memory://")
    inventory, _ = register_tables(app, 1, writer)  # type: ignore[arg-type]
    assert inventory.get("STORE_1/1") is None
    await inventory.stop()
    with pytest.raises(TableStopped):
        inventory.get("STORE_1/1")
