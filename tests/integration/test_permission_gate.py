"""The permission gate end to end, on a real broker and a worker on RocksDB: a variance
logged by a store associate goes to the DLQ as `permission`; a manager's reaches NetSuite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from schemas.models import VarianceLogged
from sinks.feeds import TRANSFER
from streams.cli import main
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import VarianceProducer
from tests.factories import stack_config, variance
from tests.fixtures.worker import WorkerProcess, wait_for

PERMISSIONS = """
[permissions]
roles = ["STORE_ASSOCIATE", "FACILITY_MANAGER", "ADMIN"]
log_variance_min_role = "FACILITY_MANAGER"
"""


def test_only_managers_move_netsuite_inventory(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n', PERMISSIONS)
    asyncio.run(prepare_broker(load_settings(config).kafka))
    refused = variance(-3, "VAR_STOLEN").model_copy(update={"logged_by_role": "STORE_ASSOCIATE"})
    allowed = variance(-1, "VAR_STOLEN").model_copy(update={"logged_by_role": "FACILITY_MANAGER"})
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish(broker.bootstrap, refused, allowed))
        csv_dir = tmp_path / "netsuite" / TRANSFER.csv_dir
        wait_for(lambda: any(csv_dir.glob("*.csv")), 60, "the transfer file", worker)
        rows = "".join(p.read_text(encoding="utf-8") for p in csv_dir.glob("*.csv"))
        assert f"VL-{allowed.event_id}," in rows
        assert f"VL-{refused.event_id}" not in rows
        status, position = worker.get("/inventory/STORE_1/10017")
        assert (status, position["net_variance"]) == (200, -1)
    finally:
        worker.stop()
    assert main(["dlq", "list", "--config", str(config), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (record,) = listing["records"]
    assert record["error_class"] == "permission"
    assert "role STORE_ASSOCIATE may not log a variance" in record["error"]


async def publish(bootstrap: str, *events: VarianceLogged) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        for event in events:
            await producer.publish(event)
