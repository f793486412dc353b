"""`variance-sync rebuild-table` on a real Tansu broker, with real workers where they matter.

The worker test proves the whole loop: a worker with RocksDB applies a known mix, the
changelogs verify against the fold while it runs, local state is dropped once it stops,
and a new worker recovers every position exactly from the changelogs. The others write
changelog records by hand: a wrong one must be reported, and records sharing one batch
must trip the guard (Tansu's wrong ListOffsets answer) while still being read in full.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.codec import encode_avro
from streams.cli import main
from streams.config import KafkaConfig
from streams.devstack.local_broker import EmbeddedBroker, LocalBroker
from streams.kafka.broker import prepare_broker
from streams.kafka.changelog import tables_dir
from streams.kafka.offsets import OffsetReader
from streams.producer.client import Delivery, VarianceProducer
from tests.factories import SAMPLE_TOML, count, line, variance
from tests.fixtures.broker import broker
from tests.fixtures.worker import WorkerProcess, wait_for

__all__ = ["broker"]

GROUP = "variance-sync"
INVENTORY_CHANGELOG = f"{GROUP}-inventory-changelog"
PROGRESS_CHANGELOG = f"{GROUP}-progress-changelog"
VARIANCE_TOPIC = "hotwax.inventory.variance-logged"
INPUTS = ("hotwax.inventory.count-approved", VARIANCE_TOPIC)
NOON = "2024-02-29T18:00:00+00:00"
KEYS = ("STORE_1/10017", "STORE_1/10019", "STORE_2/20001")


def write_config(tmp_path: Path, broker: LocalBroker, store: str = "rocksdb") -> Path:
    (tmp_path / "netsuite").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(
        SAMPLE_TOML
        + f"""
[batching]
window_seconds = 1

[kafka]
bootstrap = "{broker.bootstrap}"

[publish]
destination = "local"
local_dir = "{tmp_path / "netsuite"}"

[worker]
store = "{store}"
data_dir = "{tmp_path / "worker"}"
""",
        encoding="utf-8",
    )
    return path


def rebuild_table(config: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = main(["rebuild-table", "--config", str(config), *flags])
    out, err = capsys.readouterr()
    assert err == "" or code == 2, err
    return code, out if code != 2 else err


async def publish_mix(bootstrap: str) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish_many(
            [
                count(
                    line("10017", "3410", counted=7, system=10),
                    line("10019", "3412", counted=9, system=4),
                    event_id="count-1",
                ),
                count(
                    line("20001", "4001", counted=0, system=2),
                    facility="STORE_2",
                    count_id="CC1002",
                    event_id="count-2",
                    location="300",
                ),
                variance(-5, "VAR_DAMAGED", event_id="dmg-1"),
                variance(-1, "VAR_LOST", product="10019", item="3412", event_id="lost-1"),
                variance(-4, "VAR_SAMPLE", product="10019", item="3412", event_id="sample-1"),
            ]
        )
        # The producer resends an event: it counts once, in the table and in the fold.
        await producer.publish(variance(-5, "VAR_DAMAGED", event_id="dmg-1"))
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await raw.start()
    try:
        # Unroutable: the worker dead-letters it, so the fold must skip it.
        await raw.send_and_wait(
            VARIANCE_TOPIC, encode_avro(variance(-1, facility="STORE_9")), key=b"STORE_9"
        )
    finally:
        await raw.stop()


async def all_committed(bootstrap: str) -> bool:
    """Whether the group has committed every input record, so the fold covers them all."""
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        tps = await reader.partitions_of(INPUTS)
        committed = await reader.committed(GROUP, tps)
        marks = await reader.high_watermarks(tps)
    return all((committed[tp] or 0) == marks[tp] for tp in tps)


def applied(worker: WorkerProcess) -> bool:
    counts = []
    for key in KEYS:
        status, position = worker.get(f"/inventory/{key}")
        counts.append(position["events_applied"] if status == 200 else 0)
    return counts == [2, 3, 1]


def test_changelogs_verify_and_a_new_worker_recovers_them_exactly(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish_mix(broker.bootstrap))
        wait_for(lambda: applied(worker), 60, "the events to be applied", worker)
        wait_for(lambda: asyncio.run(all_committed(broker.bootstrap)), 30, "commits", worker)
        before = {key: worker.get(f"/inventory/{key}")[1] for key in KEYS}
        assert (
            before["STORE_1/10017"]["net_variance"],
            before["STORE_1/10019"]["net_variance"],
        ) == (
            -8,
            0,
        )

        code, out = rebuild_table(config, capsys)
        assert code == 0, out
        assert "inventory: 3 compared: 3 equal, 0 differing" in out
        assert out.rstrip().endswith("result: equal")

        code, err = rebuild_table(config, capsys, "--execute")
        assert code == 2
        assert err.count("\n") == 1
        assert "a running worker holds" in err
        assert "stop every worker that uses" in err
    finally:
        worker.stop()

    tables = tables_dir(tmp_path / "worker")
    assert sorted(p.name for p in tables.glob("inventory-*.db"))
    code, out = rebuild_table(config, capsys, "--execute", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert {read["topic"] for read in report["changelogs"]} == {
        INVENTORY_CHANGELOG,
        PROGRESS_CHANGELOG,
    }
    assert report["tables"]["inventory"] == {
        "compared": 3,
        "equal": 3,
        "differing": 0,
        "missing": 0,
        "extra": 0,
    }
    assert report["fold"] == {"records": 7, "applied": 5, "duplicates": 1, "skipped": 1}
    removed = {Path(path).name for path in report["local_state"]["removed"]}
    assert {"inventory-backups", "progress-backups"} <= removed
    assert any(name.startswith("inventory-") and name.endswith(".db") for name in removed)
    assert not list(tables.glob("inventory-*"))
    assert not list(tables.glob("progress-*"))

    successor = WorkerProcess(config, tmp_path / "successor.log").start()
    try:
        successor.wait_ready()
        after = {key: successor.get(f"/inventory/{key}")[1] for key in KEYS}
        assert after == before
    finally:
        successor.stop()


async def prepare_topics(bootstrap: str) -> None:
    await prepare_broker(KafkaConfig(bootstrap=bootstrap))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(INVENTORY_CHANGELOG, 4, 1), NewTopic(PROGRESS_CHANGELOG, 4, 1)]
        )
    finally:
        await admin.close()


async def publish_two_variances(bootstrap: str) -> list[tuple[Delivery, int]]:
    """Two variances, with the record timestamps that positions name them by."""
    await prepare_topics(bootstrap)
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        deliveries = [
            await producer.publish(variance(-5, "VAR_DAMAGED", event_id="v1")),
            await producer.publish(
                variance(2, "VAR_FOUND", product="10018", item="3411", event_id="v2")
            ),
        ]
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        stamps = []
        for d in deliveries:
            found = await reader.record_at(TopicPartition(d.topic, d.partition), d.offset)
            assert found is not None
            stamps.append(found.timestamp_ms)
    return list(zip(deliveries, stamps, strict=True))


def position(
    product: str,
    item: str,
    quantity: int,
    event_id: str,
    offset: int,
    *,
    at_ms: int = 0,
    reason: str = "VAR_DAMAGED",
) -> dict[str, Any]:
    """A position exactly as the worker stores one variance event (written out by hand)."""
    return {
        "facility_id": "STORE_1",
        "product_id": product,
        "netsuite_location_id": "254",
        "netsuite_item_id": item,
        "net_variance": quantity,
        "exported_variance": quantity,
        "last_counted_quantity": None,
        "last_counted_at": None,
        "last_event_id": event_id,
        "last_event_at": NOON,
        "events_applied": 1,
        "applied_events": {event_id: [VARIANCE_TOPIC, offset, at_ms]},
        "analytics": {f"{reason}|2024-02-29": [quantity, 1]},
    }


async def write_changelogs(
    bootstrap: str,
    deliveries: list[tuple[Delivery, int]],
    net_variance_of_v2: int,
    *,
    one_batch: bool,
) -> int:
    """Changelog records as Faust writes them (JSON key and value) on the events' partition."""
    (v1, at1), (v2, at2) = deliveries
    partition = v1.partition
    inventory = [
        ("STORE_1/10017", position("10017", "3410", -5, "v1", v1.offset, at_ms=at1)),
        (
            "STORE_1/10018",
            position("10018", "3411", 2, "v2", v2.offset, at_ms=at2, reason="VAR_FOUND"),
        ),
    ]
    inventory[1][1]["net_variance"] = net_variance_of_v2
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        sends = [
            producer.send(
                INVENTORY_CHANGELOG,
                json.dumps(value).encode(),
                key=json.dumps(key).encode(),
                partition=partition,
            )
            for key, value in inventory
        ]
        if one_batch:
            # Enqueued before any is awaited, so they share one record batch: the case in
            # which Tansu's ListOffsets answers the batch's base offset + 1.
            futures = [await send for send in sends]
            await asyncio.gather(*futures)
        else:
            for send in sends:
                await (await send)
    finally:
        await producer.stop()
    return partition


def test_a_wrong_changelog_record_is_reported_by_key_and_field(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker)
    deliveries = asyncio.run(publish_two_variances(broker.bootstrap))
    asyncio.run(write_changelogs(broker.bootstrap, deliveries, 99, one_batch=False))

    code, out = rebuild_table(config, capsys, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["guard_tripped"] is False
    assert report["differences"] == [
        {
            "table": "inventory",
            "key": "STORE_1/10018",
            "kind": "differs",
            "field": "net_variance",
            "changelog": 99,
            "fold": 2,
        }
    ]
    code, out = rebuild_table(config, capsys)
    assert code == 1
    assert "inventory: 2 compared: 1 equal, 1 differing" in out
    assert out.rstrip().endswith("result: 1 difference(s)")

    # Without RocksDB there is nothing local to rebuild: a usage error, the verify the same.
    memory = write_config(tmp_path / "memory", broker, "memory")
    code, err = rebuild_table(memory, capsys, "--execute")
    assert code == 2
    assert err.startswith("variance-sync: error: worker.store is 'memory': there is no local")
    assert err.count("\n") == 1
    code, out = rebuild_table(memory, capsys)
    assert code == 1
    assert out.rstrip().endswith("result: 1 difference(s)")


def test_the_guard_trips_on_a_multi_record_batch_yet_everything_is_read(
    tmp_path: Path, tansu_broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tansu's ListOffsets bug; Apache Kafka answers the true end (checked by the other tests).
    broker = tansu_broker
    config = write_config(tmp_path, broker)
    deliveries = asyncio.run(publish_two_variances(broker.bootstrap))
    partition = asyncio.run(write_changelogs(broker.bootstrap, deliveries, 2, one_batch=True))

    # Verifying reads past the short ListOffsets end and says so; it is no failure while
    # workers run, since they end such partitions before any recovery.
    code, out = rebuild_table(config, capsys, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["differences"] == []
    assert report["guard_tripped"] is True
    (tripped,) = [read for read in report["changelogs"] if read["guard_tripped"]]
    assert (tripped["topic"], tripped["partition"]) == (INVENTORY_CHANGELOG, partition)
    assert (tripped["records"], tripped["high_watermark"], tripped["list_offsets_end"]) == (2, 2, 1)

    code, out = rebuild_table(config, capsys)
    assert code == 0
    assert (
        f"guard: {INVENTORY_CHANGELOG}[{partition}]: ListOffsets end 1 but Fetch high "
        "watermark 2; Faust's changelog recovery would stop at offset 0" in out
    )
    assert "workers end it with a single-record batch before recovering" in out
    assert "inventory: 2 compared: 2 equal, 0 differing" in out

    # A rebuild ends the partition first, so a worker without local state recovers it all.
    state = tables_dir(tmp_path / "worker") / f"inventory-{partition}.db"
    state.mkdir(parents=True)
    code, out = rebuild_table(config, capsys, "--execute")
    assert code == 0, out
    assert "guard:" not in out
    assert "inventory: 2 compared: 2 equal, 0 differing" in out
    assert not state.exists()


def test_a_worker_ends_a_short_changelog_before_recovering_it(
    tmp_path: Path, tansu_broker: EmbeddedBroker
) -> None:
    broker = tansu_broker
    # Forty positions in one record batch: Tansu's ListOffsets answers 1 for that
    # partition, and a recovery that trusted it would lose all but the first.
    config = write_config(tmp_path, broker, store="memory")
    asyncio.run(prepare_topics(broker.bootstrap))
    asyncio.run(write_one_batch(broker.bootstrap, 40))
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        for n in (0, 20, 39):
            status, found = worker.get(f"/inventory/STORE_9/{n}")
            assert status == 200, found
            assert found["net_variance"] == n
    finally:
        worker.stop()


async def write_one_batch(bootstrap: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=500)
    await producer.start()
    try:
        sent = [
            await producer.send(
                INVENTORY_CHANGELOG,
                json.dumps(position(str(n), str(n), n, f"e{n}", n)).encode(),
                key=json.dumps(f"STORE_9/{n}").encode(),
                partition=0,
            )
            for n in range(count)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
