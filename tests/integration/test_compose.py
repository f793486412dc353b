"""docker-compose.yml cannot run here (no Docker engine), so it is kept honest by running
what it describes natively: the Kafka service's settings rendered into a server.properties
and started from the same jars, and the worker with the compose file's environment, end
to end."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import KafkaConfig
from streams.devstack.broker import free_port
from streams.devstack.kafka_broker import KafkaBroker
from streams.producer.client import VarianceProducer
from tests.factories import variance
from tests.fixtures.worker import WorkerProcess, wait_for

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return dict(loaded["services"])


def native_properties(data_dir: Path) -> tuple[str, dict[str, int]]:
    """The Kafka service's KAFKA_* settings as server.properties, as the apache/kafka image
    turns them into one, with loopback hosts, free ports and a local log dir."""
    env = services()["kafka"]["environment"]
    ports: dict[str, int] = {}

    def local(value: str) -> str:
        def port(match: re.Match[str]) -> str:
            ports.setdefault(match[1], free_port())
            return f"127.0.0.1:{ports[match[1]]}"

        return re.sub(r"(?:kafka|localhost)?:([0-9]+)", port, value)

    lines = []
    for name, value in env.items():
        if not name.startswith("KAFKA_"):
            continue
        key = name.removeprefix("KAFKA_").lower().replace("_", ".")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key == "log.dirs":
            text = str(data_dir / "logs")
        elif key in ("listeners", "advertised.listeners", "controller.quorum.voters"):
            text = local(text)
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n", ports


def test_the_compose_files_name_what_the_code_reads() -> None:
    compose = services()
    assert compose["kafka"]["image"] == "apache/kafka:4.4.0"
    env = compose["kafka"]["environment"]
    log_dirs = env["KAFKA_LOG_DIRS"]
    assert any(volume.endswith(f":{log_dirs}") for volume in compose["kafka"]["volumes"])
    worker = compose["worker"]["environment"]
    assert worker["VARIANCE_SYNC_KAFKA__FLAVOR"] == "kafka"
    assert worker["VARIANCE_SYNC_WORKER__STORE"] == "rocksdb"
    assert worker["VARIANCE_SYNC_KAFKA__BOOTSTRAP"] == "kafka:9092"
    keys = (Path(__file__).parents[2] / "compose" / "keys.sh").read_text(encoding="utf-8")
    assert "[localhost]:2222" in keys  # the host's commands reach the SFTP server too
    assert "SFTP_UID" in keys
    assert "${SFTP_UID" in compose["sftp"]["command"]


async def publish_one(bootstrap: str) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish(variance(-2, "VAR_DAMAGED", facility="STORE_CHICAGO"))


def test_the_compose_broker_settings_run_natively_end_to_end(
    kafka_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "kafka"
    properties, ports = native_properties(folder)
    internal = ports["9092"]
    broker = KafkaBroker(internal, folder, properties=properties)
    broker.start()
    try:
        env = {
            k: str(v)
            for k, v in services()["worker"]["environment"].items()
            if not k.startswith(("VARIANCE_SYNC_SFTP__", "VARIANCE_SYNC_WORKER__WEB_HOST"))
        }
        env.update(
            {
                "VARIANCE_SYNC_CONFIG": str(Path(__file__).parents[2] / "compose" / "config.toml"),
                "VARIANCE_SYNC_KAFKA__BOOTSTRAP": f"127.0.0.1:{internal}",
                "VARIANCE_SYNC_WORKER__DATA_DIR": str(tmp_path / "worker"),
                "VARIANCE_SYNC_PUBLISH__DESTINATION": "local",
                "VARIANCE_SYNC_PUBLISH__LOCAL_DIR": str(tmp_path / "netsuite"),
                "VARIANCE_SYNC_BATCHING__WINDOW_SECONDS": "1",
            }
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        (tmp_path / "netsuite").mkdir()  # the SFTP volume's upload folder, made by keys.sh
        worker = WorkerProcess(Path(env["VARIANCE_SYNC_CONFIG"]), tmp_path / "worker.log")
        worker.start().wait_ready()
        try:
            # Published from the host, as the compose file says: the EXTERNAL listener.
            asyncio.run(publish_one(f"127.0.0.1:{ports['29092']}"))
            csv = tmp_path / "netsuite" / "inventorytransfer" / "csv"
            wait_for(lambda: any(csv.glob("*.csv")), 60, "the transfer file", worker)
            (path,) = csv.glob("*.csv")
            assert path.read_bytes().endswith(b",3410,2,254,1099,02/29/2024,VAR_DAMAGED,1\r\n")
        finally:
            worker.stop()
    finally:
        broker.stop()
