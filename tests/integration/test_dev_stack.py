"""`variance-sync dev --no-worker` as a user runs it, plus a worker started from stack.env;
the stack's NetSuite simulator imports what that worker publishes."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streams.config import KafkaConfig
from streams.devstack.local_broker import free_port, port_open
from streams.devstack.local_kafka import default_jars, missing_parts
from streams.kafka.offsets import OffsetReader
from streams.netsuite.books import balances, open_ledger
from streams.producer.client import VarianceProducer
from tests.factories import variance
from tests.fixtures.broker import BROKERS
from tests.fixtures.ci import require
from tests.fixtures.worker import WorkerProcess


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "variance-sync dev exited early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def read_published(feed_dir: Path) -> tuple[str, bytes] | None:
    """The one published transfer file, whether still in csv/ or imported into archive/."""
    # csv/ first: the stack's NetSuite simulator moves files from there to archive/.
    for folder in ("csv", "archive"):
        for path in (feed_dir / folder).glob("acme_InventoryTransferFeed_*.csv"):
            try:
                return folder, path.read_bytes()
            except FileNotFoundError:
                continue  # moved to archive/ between the listing and the read
    return None


async def publish_one(bootstrap: str) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish(
            variance(-3, "VAR_STOLEN", facility="STORE_CHICAGO", event_id="dev-1")
        )


def start_dev(data: Path, kind: str, kafka_port: int, sftp_port: int, *flags: str) -> Any:
    if kind == "kafka" and (problem := missing_parts(default_jars())) is not None:
        require(f"Apache Kafka: {problem}")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "dev",
            "--broker",
            kind,
            "--data-dir",
            str(data),
            "--kafka-port",
            str(kafka_port),
            "--sftp-port",
            str(sftp_port),
            "--window-seconds",
            "1",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # The worker's web port too: never the default 6066, which may be taken here.
        env={**os.environ, "VARIANCE_SYNC_WORKER__WEB_PORT": str(free_port())},
    )


BANNERS = {"tansu": "(Tansu, in memory)", "kafka": "(Apache Kafka, {data}/kafka)"}


@pytest.mark.parametrize("kind", BROKERS)
def test_dev_stack_serves_a_separately_started_worker(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "var"
    kafka_port, sftp_port = free_port(), free_port()
    dev = start_dev(data, kind, kafka_port, sftp_port, "--no-worker", "--no-sample")
    worker = None
    try:
        wait_for_file(data / "stack.env", dev)
        env = read_env(data / "stack.env")
        assert env["VARIANCE_SYNC_SFTP__PORT"] == str(sftp_port)
        assert (
            Path(env["VARIANCE_SYNC_SFTP__KNOWN_HOSTS"])
            .read_text()
            .startswith(f"[127.0.0.1]:{sftp_port} ssh-ed25519 ")
        )
        for folder in (
            "inventoryadjustment/csv",
            "inventorytransfer/archive",
            "variance-sync/ledger",
        ):
            assert (data / "sftp" / "netsuite" / folder).is_dir()

        worker = WorkerProcess(
            Path(env["VARIANCE_SYNC_CONFIG"]), tmp_path / "worker.log", env
        ).start()
        worker.wait_ready()
        asyncio.run(publish_one(env["VARIANCE_SYNC_KAFKA__BOOTSTRAP"]))
        transfers = data / "sftp" / "netsuite" / "inventorytransfer"
        deadline = time.monotonic() + 30
        while (found := read_published(transfers)) is None:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)
        assert found[1].endswith(b"\r\nVL-dev-1,3410,3,254,1098,02/29/2024,VAR_STOLEN,1\r\n")

        # The simulator passes every 10 s: the file reaches archive/, then the books.
        deadline = time.monotonic() + 30
        while (found := read_published(transfers)) is None or found[0] != "archive":
            assert time.monotonic() < deadline, (data / "logs" / "netsuite-sim.log").read_text()
            time.sleep(0.2)
        assert not list((transfers / "csv").iterdir())
        with open_ledger(data / "netsuite-sim.sqlite") as books:
            assert balances(books) == {("254", "3410"): -3, ("1098", "3410"): 3}
    finally:
        if worker is not None:
            worker.stop()
        dev.send_signal(signal.SIGINT)
        output = dev.communicate(timeout=30)[0].decode()
    assert dev.returncode == 128 + signal.SIGINT, output
    banner = BANNERS[kind].format(data=data)
    assert f"Kafka broker             : 127.0.0.1:{kafka_port} {banner}" in output
    ledger = data / "netsuite-sim.sqlite"
    assert (
        f"NetSuite books (SQLite)  : {ledger}; see them with: "
        f"variance-sync netsuite-sim --ledger {ledger} --report"
    ) in output
    assert output.rstrip().endswith("variance-sync dev: stopped")
    assert not port_open("127.0.0.1", kafka_port)  # the broker stopped with it
    assert not port_open("127.0.0.1", sftp_port)


async def input_state(bootstrap: str) -> tuple[int, int | None]:
    """Events on the variance topic, and what the dev worker's group committed of them."""
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        tps = await reader.partitions("hotwax.inventory.variance-logged")
        marks = await reader.high_watermarks(tps)
        committed = await reader.committed("variance-sync", tps)
    done = [offset for offset in committed.values() if offset is not None]
    return sum(marks.values()), sum(done) if done else None


def test_dev_on_apache_kafka_keeps_topics_and_offsets_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "var"
    kafka_port, sftp_port = free_port(), free_port()
    dev = start_dev(data, "kafka", kafka_port, sftp_port, "--no-sample")
    bootstrap = f"127.0.0.1:{kafka_port}"
    transfers = data / "sftp" / "netsuite" / "inventorytransfer"
    try:
        wait_for_file(data / "stack.env", dev)
        assert read_env(data / "stack.env")["VARIANCE_SYNC_WORKER__STORE"] == "rocksdb"
        asyncio.run(publish_one(bootstrap))
        deadline = time.monotonic() + 60
        while read_published(transfers) is None or asyncio.run(input_state(bootstrap)) != (1, 1):
            assert dev.poll() is None, "variance-sync dev exited early"
            assert time.monotonic() < deadline, "nothing published and committed"
            time.sleep(0.5)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=60)
    again = start_dev(data, "kafka", kafka_port, sftp_port, "--no-sample", "--no-worker")
    try:
        wait_for_file(data / "stack.env", again)
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", kafka_port):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert asyncio.run(input_state(bootstrap)) == (1, 1)  # the event and its commit
    finally:
        again.send_signal(signal.SIGINT)
        assert again.communicate(timeout=60) is not None
    assert again.returncode == 128 + signal.SIGINT
