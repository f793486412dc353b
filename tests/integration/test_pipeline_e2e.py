"""End to end on real parts: Tansu, a worker process, and OpenSSH's sshd.

A known mix of events goes in (valid, duplicated and invalid); the exact CSV rows must
land in NetSuite's folders, the invalid events in the DLQ with reasons, and the
inventory table must hold the expected positions.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.codec import encode_avro
from sinks.naming import parse_batch_file_name
from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.producer.client import VarianceProducer
from tests.factories import SAMPLE_TOML, count, line, variance
from tests.fixtures.broker import broker
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for

__all__ = ["broker"]

ADJUSTMENT_HEADER = (
    "Reference No,Adjustment Account,Item,Adjust Qty By,Location,Date,Memo,Subsidiary,"
    "HC Inventory Adj Id"
)
TRANSFER_HEADER = "External Id,Item,Adjust Qty By,From Location,To Location,Date,Memo,Subsidiary"
EXPECTED_ADJUSTMENTS = """\
CC1001-10017,927,3410,-3,254,02/29/2024,Inventory cycle count by HotWax,1,CC1001-10017
CC1001-10019,927,3412,5,254,02/29/2024,Inventory cycle count by HotWax,1,CC1001-10019
CC1002-20001,927,4001,-2,300,02/29/2024,Inventory cycle count by HotWax,1,CC1002-20001
VL-lost-1,927,3412,-1,254,02/29/2024,Lost,1,VL-lost-1
"""
EXPECTED_TRANSFERS = """\
VL-dmg-1,3410,5,254,1099,02/29/2024,"Damaged, box crushed",1
VL-found-1,3411,2,1099,254,02/29/2024,Damaged,1
"""
MISMATCH = "lines[0].variance_quantity: 5 is not counted_quantity - system_quantity"
COUNT_TOPIC = "hotwax.inventory.count-approved"
VARIANCE_TOPIC = "hotwax.inventory.variance-logged"


def worker_config(tmp_path: Path, broker: LocalBroker, sshd: SSHDServer, base_dir: str) -> Path:
    params = sshd.params
    text = (
        SAMPLE_TOML
        + f"""
[batching]
window_seconds = 2

[kafka]
bootstrap = "{broker.bootstrap}"

[sftp]
host = "127.0.0.1"
port = {params.port}
username = "{params.username}"
base_dir = "{base_dir}"
private_key = "{params.client_keys[0]}"
known_hosts = "{params.known_hosts}"

[worker]
store = "rocksdb"
data_dir = "{tmp_path / "worker"}"
"""
    )
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def read_rows(folder: Path) -> tuple[list[str], list[list[str]]]:
    """Every row of every CSV in `folder`, and the header lines seen."""
    headers, rows = [], []
    for path in sorted(folder.glob("*.csv")):
        assert parse_batch_file_name(path.name) is not None, path.name
        lines = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
        headers.append(",".join(lines[0]))
        rows += lines[1:]
    return headers, rows


def table(text: str) -> list[list[str]]:
    return sorted(csv.reader(io.StringIO(text)))


async def publish_mix(bootstrap: str) -> None:
    kafka = KafkaConfig(bootstrap=bootstrap)
    async with VarianceProducer(kafka=kafka) as producer:
        await producer.publish_many(
            [
                count(
                    line("10017", "3410", counted=7, system=10),
                    line("10018", "3411", counted=5, system=5),
                    line("10019", "3412", counted=9, system=4),
                    count_id="CC1001",
                    event_id="count-1",
                ),
                count(
                    line("20001", "4001", counted=0, system=2),
                    facility="STORE_2",
                    count_id="CC1002",
                    event_id="count-2",
                    location="300",
                ),
                variance(-5, "VAR_DAMAGED", description="Damaged, box crushed", event_id="dmg-1"),
                variance(
                    2,
                    "VAR_DAMAGED",
                    product="10018",
                    item="3411",
                    description="Damaged",
                    event_id="found-1",
                ),
                variance(
                    -1,
                    "VAR_LOST",
                    product="10019",
                    item="3412",
                    description="Lost",
                    event_id="lost-1",
                ),
                variance(-4, "VAR_SAMPLE", product="10019", item="3412", event_id="sample-1"),
            ]
        )
        # The producer resends an event: it must count once.
        await producer.publish(
            variance(-5, "VAR_DAMAGED", description="Damaged, box crushed", event_id="dmg-1")
        )
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await raw.start()
    try:
        await raw.send_and_wait(VARIANCE_TOPIC, b"\xc3\x01\x00\x01", key=b"STORE_1")
        bad_count = (
            b'{"event_id":"bad-1","occurred_at":"2024-02-29T12:00:00-06:00","facility_id":"STORE_1",'
            b'"count_id":"CC9","approved_by":"m","lines":[{"product_id":"1","netsuite_item_id":"2",'
            b'"counted_quantity":3,"system_quantity":1,"variance_quantity":5}]}'
        )
        await raw.send_and_wait(
            COUNT_TOPIC, bad_count, key=b"STORE_1", headers=[("content-type", b"application/json")]
        )
        await raw.send_and_wait(
            VARIANCE_TOPIC, encode_avro(variance(-1, facility="STORE_9")), key=b"STORE_9"
        )
    finally:
        await raw.stop()


async def read_dlq(bootstrap: str, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        "variance-sync.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    letters: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + 30
        while len(letters) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                letters += [{k: v.decode() for k, v in r.headers} for r in records]
    finally:
        await consumer.stop()
    return letters


def test_events_reach_netsuite_folders_exactly_once(
    tmp_path: Path, broker: LocalBroker, sshd: SSHDServer
) -> None:
    base_dir = f"netsuite-{uuid.uuid4().hex[:8]}"
    root = sshd.root / base_dir
    worker = WorkerProcess(
        worker_config(tmp_path, broker, sshd, base_dir), tmp_path / "worker.log"
    ).start()
    try:
        worker.wait_ready()
        asyncio.run(publish_mix(broker.bootstrap))
        adjustments = root / "inventoryadjustment" / "csv"
        transfers = root / "inventorytransfer" / "csv"
        wait_for(
            lambda: len(read_rows(adjustments)[1]) >= 4 and len(read_rows(transfers)[1]) >= 2,
            60,
            "the CSV rows",
            worker,
        )
        time.sleep(3)  # one more window: nothing else may arrive

        headers, rows = read_rows(adjustments)
        assert set(headers) == {ADJUSTMENT_HEADER}
        assert sorted(rows) == table(EXPECTED_ADJUSTMENTS)
        headers, rows = read_rows(transfers)
        assert set(headers) == {TRANSFER_HEADER}
        assert sorted(rows) == table(EXPECTED_TRANSFERS)
        assert not list((root / "inventoryadjustment" / ".staging").glob("*"))

        letters = asyncio.run(read_dlq(broker.bootstrap, expected=3))
        assert len(letters) == 3
        by_class = {h["variance-sync.error-class"]: h for h in letters}
        assert by_class["invalid"]["variance-sync.source-topic"] == COUNT_TOPIC
        assert MISMATCH in by_class["invalid"]["variance-sync.error"]
        assert by_class["decode"]["variance-sync.source-topic"] == VARIANCE_TOPIC
        assert by_class["unroutable"]["variance-sync.source-topic"] == VARIANCE_TOPIC
        assert "unknown facility 'STORE_9'" in by_class["unroutable"]["variance-sync.error"]
        assert all(h["variance-sync.source-offset"].isdigit() for h in letters)

        status, position = worker.get("/inventory/STORE_1/10017")
        assert status == 200
        assert (
            position["net_variance"],
            position["exported_variance"],
            position["events_applied"],
        ) == (-8, -8, 2)
        _, position = worker.get("/inventory/STORE_1/10019")
        assert (position["net_variance"], position["exported_variance"]) == (5 - 1 - 4, 5 - 1)
        assert position["last_counted_quantity"] == 9
        _, position = worker.get("/inventory/STORE_2/20001")
        assert position["netsuite_location_id"] == "300"
        status, _ = worker.get("/inventory/STORE_9/10017")
        assert status == 404
        check_http_views(worker)
    finally:
        worker.stop()


def check_http_views(worker: WorkerProcess) -> None:
    status, metrics = worker.text("/metrics")
    assert status == 200
    for name in (
        'variance_sync_events_total{event_type="count-approved",outcome="applied"} 2.0',
        'variance_sync_events_total{event_type="variance-logged",outcome="duplicate"} 1.0',
        'variance_sync_dead_letters_total{error_class="unroutable"',
        'variance_sync_files_published_total{feed="inventorytransfer"}',
        # VAR_SAMPLE is one of the config's local reasons: named (any other is `other`).
        'variance_sync_unexported_changes_total{reason_id="VAR_SAMPLE"} 1.0',
    ):
        assert name in metrics, name
    wait_for(
        lambda: "variance_sync_consumer_lag{" in worker.text("/metrics")[1],
        20,
        "lag metrics",
        worker,
    )
    assert worker.get("/health") == (200, {"status": "ok"})
    status, ready = worker.get("/ready")
    assert (status, ready["ready"]) == (200, True)
    status, lag = worker.get("/lag")
    assert (status, lag["group"]) == (200, "variance-sync")
    status, batches = worker.get("/batches")
    assert (status, batches["last_error"]) == (200, None)
    # Read-only: nothing answers a mutation.
    for path in ("/inventory/STORE_1/10017", "/batches", "/lag", "/ready"):
        assert worker.text(path, method="POST")[0] == 405
        assert worker.text(path, method="DELETE")[0] == 405


async def publish_variances(bootstrap: str, prefix: str, count: int) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish_many(
            [
                variance(-1, "VAR_LOST", event_id=f"{prefix}-{i}", product=str(10_000 + i))
                for i in range(count)
            ]
        )


def test_an_sftp_outage_delays_batches_but_loses_and_repeats_nothing(
    tmp_path: Path, broker: LocalBroker, sshd: SSHDServer
) -> None:
    base_dir = f"netsuite-{uuid.uuid4().hex[:8]}"
    adjustments = sshd.root / base_dir / "inventoryadjustment" / "csv"
    worker = WorkerProcess(
        worker_config(tmp_path, broker, sshd, base_dir), tmp_path / "worker.log"
    ).start()
    try:
        worker.wait_ready()
        asyncio.run(publish_variances(broker.bootstrap, "before", 5))
        wait_for(lambda: len(read_rows(adjustments)[1]) == 5, 30, "rows before the outage", worker)
        sshd.stop()
        try:
            asyncio.run(publish_variances(broker.bootstrap, "during", 20))
            time.sleep(8)  # four windows pass while the server is down
            assert len(read_rows(adjustments)[1]) == 5
            status, body = worker.get("/ready")
            assert status == 503
            assert body["checks"]["destination_reachable"] is False
        finally:
            sshd.start()
        wait_for(lambda: len(read_rows(adjustments)[1]) >= 25, 90, "rows after the outage", worker)
        time.sleep(3)
        refs = sorted(row[0] for row in read_rows(adjustments)[1])
        expected = sorted(
            [f"VL-before-{i}" for i in range(5)] + [f"VL-during-{i}" for i in range(20)]
        )
        assert refs == expected
        assert "keeping the batch" in worker.log()
    finally:
        worker.stop()
