"""`variance-sync lag` on a real broker: exact figures, and statuses that follow the consumer."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from streams.cli import main
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.kafka.offsets import OffsetReader
from tests.factories import SAMPLE_TOML
from tests.fixtures.broker import broker
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.test_pipeline_e2e import publish_variances

__all__ = ["broker"]

COUNTS = "hotwax.inventory.count-approved"
VARIANCES = "hotwax.inventory.variance-logged"


def write_config(tmp_path: Path, broker: LocalBroker) -> Path:
    (tmp_path / "netsuite").mkdir(exist_ok=True)
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
retry_max_seconds = 1

[worker]
store = "rocksdb"
data_dir = "{tmp_path / "worker"}"
""",
        encoding="utf-8",
    )
    return path


def lag(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    code = main(["lag", "--config", str(config), "--json", "--samples", "1", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)[0] if out.strip() else None


def by_partition(report: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p["topic"], p["partition"]): p for p in report["partitions"]}


async def backlog(bootstrap: str, now_ms: int) -> None:
    """Known records: variances p0 gets 6 (written 100 s ago), p1 gets 4 (5 s ago), p2 gets
    3 (1000 s ago); the group has committed 2, 4 (all) and 0 of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for partition, count, age in ((0, 6, 100), (1, 4, 5), (2, 3, 1000)):
        for _ in range(count):
            await producer.send_and_wait(
                VARIANCES, b"x", partition=partition, timestamp_ms=now_ms - age * 1000
            )
    await producer.stop()
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        await reader.commit(
            "ops",
            {
                TopicPartition(VARIANCES, 0): 2,
                TopicPartition(VARIANCES, 1): 4,
                TopicPartition(VARIANCES, 2): 0,
            },
        )


def test_figures_match_a_hand_computation(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker)
    asyncio.run(prepare_broker(load_settings(config).kafka))
    now_ms = int(time.time() * 1000)
    asyncio.run(backlog(broker.bootstrap, now_ms))
    code, report = lag(
        config, capsys, "--group", "ops", "--stall-after", "60", "--stop-after", "600"
    )
    rows = by_partition(report)
    assert (
        rows[(VARIANCES, 0)]["committed"],
        rows[(VARIANCES, 0)]["high_watermark"],
        rows[(VARIANCES, 0)]["lag"],
    ) == (2, 6, 4)
    assert rows[(VARIANCES, 0)]["oldest_unconsumed_age_seconds"] == pytest.approx(100, abs=5)
    assert rows[(VARIANCES, 0)]["status"] == "STALL"  # 100 s old, and not committed past
    assert (rows[(VARIANCES, 1)]["lag"], rows[(VARIANCES, 1)]["status"]) == (0, "OK")
    assert (rows[(VARIANCES, 2)]["lag"], rows[(VARIANCES, 2)]["status"]) == (3, "STOP")
    assert rows[(VARIANCES, 3)] == {
        "topic": VARIANCES,
        "partition": 3,
        "committed": None,
        "high_watermark": 0,
        "lag": 0,
        "oldest_unconsumed_age_seconds": None,
        "status": "OK",
    }
    assert rows[(COUNTS, 0)]["lag"] == 0
    assert report["status"] == "STOP"
    assert code == 2


def test_status_follows_a_running_paused_and_stopped_worker(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker)
    thresholds = ("--stall-after", "4", "--stop-after", "12")
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish_variances(broker.bootstrap, "run", 8))

        def caught_up() -> bool:
            report = lag(config, capsys, *thresholds)[1]
            published = report["batches"]["last_publish"]["inventoryadjustment"] is not None
            return published and all(p["lag"] == 0 for p in report["partitions"])

        wait_for(caught_up, 30, "the worker to catch up and report it", worker)
        code, report = lag(config, capsys, *thresholds)
        assert (code, report["status"]) == (0, "OK")
        assert report["batches"]["workers"], "the worker's batch snapshots are visible"

        # Paused: the worker runs, but cannot publish, so it commits nothing.
        (tmp_path / "netsuite").rename(tmp_path / "netsuite-away")
        asyncio.run(publish_variances(broker.bootstrap, "paused", 3))
        time.sleep(5)
        code, report = lag(config, capsys, *thresholds)
        assert (code, report["status"]) == (2, "STALL")

        def batch_shown() -> bool:
            batches = lag(config, capsys, *thresholds)[1]["batches"]
            return bool(batches["open"]) and batches["oldest_unpublished_age_seconds"] >= 4

        wait_for(batch_shown, 15, "the unpublished batch to be reported with its age", worker)
        (tmp_path / "netsuite-away").rename(tmp_path / "netsuite")
        wait_for(
            lambda: lag(config, capsys, *thresholds)[1]["status"] == "OK", 30, "recovery", worker
        )

        # Stopped: nothing consumes while events arrive.
        worker.stop()
        asyncio.run(publish_variances(broker.bootstrap, "stopped", 3))
        assert lag(config, capsys, *thresholds)[1]["status"] == "OK"  # too fresh to judge
        time.sleep(13)
        code, report = lag(config, capsys, *thresholds)
        assert (code, report["status"]) == (2, "STOP")
    finally:
        worker.stop()


def test_unknown_group_is_one_line(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, broker)
    asyncio.run(prepare_broker(load_settings(config).kafka))
    code = main(["lag", "--config", str(config), "--group", "nobody"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "variance-sync: error: unknown consumer group nobody (known: none)\n"


def test_watch_into_a_pipe_prints_every_refresh(tmp_path: Path, broker: LocalBroker) -> None:
    config = write_config(tmp_path, broker)
    asyncio.run(prepare_broker(load_settings(config).kafka))
    asyncio.run(backlog(broker.bootstrap, int(time.time() * 1000)))
    command = [sys.executable, "-m", "streams.cli", "lag", "--config", str(config)]
    watch = subprocess.Popen(
        [*command, "--group", "ops", "--watch", "0.5", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    refreshes = [json.loads(watch.stdout.readline()) for _ in range(3)]
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=30)
    assert err == ""
    assert [r[0]["group"] for r in refreshes] == ["ops"] * 3
    assert all(by_partition(r[0])[(VARIANCES, 0)]["lag"] == 4 for r in refreshes)
