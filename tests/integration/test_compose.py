"""docker-compose.yml cannot run here (no Docker engine), so it is kept honest by reading
its structure (pinned images, declared volumes and secrets, depends_on conditions, the
mounts of the monitoring services), by running compose/keys.sh, and by running what it
describes natively: the Kafka service's settings rendered into a server.properties and
started from the same jars, the worker with the compose file's environment end to end,
and the worker's health check command against it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import KafkaConfig
from streams.devstack.local_broker import free_port
from streams.devstack.local_kafka import KafkaBroker
from streams.producer.client import VarianceProducer
from tests.factories import variance
from tests.fixtures.ci import require
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


ROOT = Path(__file__).parents[2]
NEEDS_KEYS = ":?run compose/keys.sh first}"


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
    keys = (ROOT / "compose" / "keys.sh").read_text(encoding="utf-8")
    assert "[localhost]:2222" in keys  # the host's commands reach the SFTP server too
    assert "${HOST_UID" + NEEDS_KEYS in compose["sftp"]["command"]


def test_the_compose_file_is_well_formed() -> None:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    compose = services()
    volumes, secrets = set(loaded["volumes"]), set(loaded.get("secrets", {}))
    for name, service in compose.items():
        assert ("image" in service) != ("build" in service), name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith("./") or source in volumes, (name, mount)
        assert set(service.get("secrets", [])) <= secrets, name
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in compose, (name, needed)
            assert condition["condition"] in ("service_started", "service_healthy"), name
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in compose[needed], (name, needed)
    for secret in loaded.get("secrets", {}).values():
        assert secret["file"].startswith("./compose/keys/")  # made by keys.sh, ignored by git


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        if image is None:
            continue
        # A digest, or a tag with a version number in it (never `latest`, `alpine`...).
        digest = re.fullmatch(r"[a-z0-9./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}", image)
        versioned = re.fullmatch(r"[a-z0-9./-]+:v?[0-9]+\.[0-9]+\.[0-9]+", image)
        assert digest or versioned, f"{name}: {image} floats"


def test_the_worker_runs_as_the_host_user_restarts_and_reports_readiness() -> None:
    worker = services()["worker"]
    # The uid and gid keys.sh writes to .env, with no fallback to a uid it did not write.
    assert worker["user"] == "${HOST_UID" + NEEDS_KEYS + ":${HOST_GID" + NEEDS_KEYS
    assert worker["restart"] in ("unless-stopped", "on-failure")
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    test = worker["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "/ready" in test[3]
    env = worker["environment"]
    assert env["VARIANCE_SYNC_SFTP__PRIVATE_KEY"] == "/run/secrets/sftp_client_key"
    assert env["VARIANCE_SYNC_SECRETS_DIR"] == "/run/secrets"
    # The worker sees the client's files only, never the SFTP server's host key.
    assert not any("ssh_host" in mount for mount in worker["volumes"])


def test_prometheus_and_grafana_mount_the_monitoring_files() -> None:
    compose = services()
    prometheus, grafana = compose["prometheus"], compose["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana-oss:")
    assert {
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./deploy/prometheus/rules:/etc/prometheus/rules:ro",
    } <= set(prometheus["volumes"])
    assert {
        "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro",
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro",
    } == set(grafana["volumes"])
    for mount in [*prometheus["volumes"], *grafana["volumes"]]:
        source = mount.split(":")[0]
        assert not source.startswith("./") or (ROOT / source).exists(), mount
    assert "9090:9090" in prometheus["ports"]
    assert "3000:3000" in grafana["ports"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # From .env, and compose refuses to start without it: no default password in the file.
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD" + NEEDS_KEYS + ""


def test_no_advice_to_give_the_key_to_another_uid() -> None:
    # `chown 1000` on the client key locked its owner out of it; keys.sh makes it unneeded.
    texts = [ROOT / "README.md", ROOT / "Dockerfile", *(ROOT / "compose").iterdir()]
    texts += [*(ROOT / "docs").glob("*.md"), *(ROOT / "streams").rglob("*.py")]
    for path in texts:
        assert "chown 1000" not in path.read_text(encoding="utf-8", errors="replace"), path


def run_keys_script(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(tree / "compose" / "keys.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def dotenv(tree: Path) -> dict[str, str]:
    lines = (tree / ".env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_keys_script_writes_the_uid_that_owns_the_key(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        require("ssh-keygen (OpenSSH) is not installed")
    (tmp_path / "compose").mkdir()
    shutil.copy(ROOT / "compose" / "keys.sh", tmp_path / "compose" / "keys.sh")
    first = run_keys_script(tmp_path)
    # Yours; root's cannot be an SFTP user's, so root hands the key and folder to 1000.
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (1000, 1000)
    env = dotenv(tmp_path)
    assert (env["HOST_UID"], env["HOST_GID"]) == (str(uid), str(gid))
    key = (tmp_path / "compose" / "keys" / "client_ed25519_key").stat()
    assert key.st_uid == uid  # the worker runs as HOST_UID: it can read its key...
    assert stat.S_IMODE(key.st_mode) == 0o600  # ...and nobody else can
    assert (tmp_path / "var" / "compose-sftp" / "netsuite").stat().st_uid == uid
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    password = env["GRAFANA_ADMIN_PASSWORD"]
    assert len(password) >= 32
    assert "chown" not in first.stdout + first.stderr
    assert password not in first.stdout + first.stderr
    known_hosts = (tmp_path / "compose" / "keys" / "known_hosts").read_text(encoding="utf-8")
    assert known_hosts.startswith("sftp ssh-ed25519 ")
    # Run again: the same keys and password, so a running stack keeps working.
    before = (tmp_path / "compose" / "keys" / "client_ed25519_key").read_bytes()
    run_keys_script(tmp_path)
    assert (tmp_path / "compose" / "keys" / "client_ed25519_key").read_bytes() == before
    assert dotenv(tmp_path)["GRAFANA_ADMIN_PASSWORD"] == password


def healthcheck(environment: dict[str, str], port: int) -> int:
    """The worker's health check command, run as Docker runs it in the container: with
    the worker's environment (the web port replaced) and the image's Python."""
    test = services()["worker"]["healthcheck"]["test"]
    env = {**environment, "VARIANCE_SYNC_WORKER__WEB_PORT": str(port), "PATH": os.defpath}
    command = [sys.executable, *test[2:]]
    result = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    return result.returncode


class _NotReady(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503 if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_health_check_fails_on_a_503_and_on_no_answer() -> None:
    environment = {k: str(v) for k, v in services()["worker"]["environment"].items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert healthcheck(environment, server.server_address[1]) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck(environment, free_port()) != 0


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
        compose_env = {k: str(v) for k, v in services()["worker"]["environment"].items()}
        env = {
            k: v
            for k, v in compose_env.items()
            if not k.startswith(("VARIANCE_SYNC_SFTP__", "VARIANCE_SYNC_WORKER__WEB_"))
        }
        env.update(
            {
                "VARIANCE_SYNC_CONFIG": str(ROOT / "compose" / "config.toml"),
                "VARIANCE_SYNC_SECRETS_DIR": str(compose_secrets(tmp_path / "secrets")),
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
            assert healthcheck(compose_env, worker.web_port) == 0
            # Published from the host, as the compose file says: the EXTERNAL listener.
            asyncio.run(publish_one(f"127.0.0.1:{ports['29092']}"))
            csv = tmp_path / "netsuite" / "inventorytransfer" / "csv"
            wait_for(lambda: any(csv.glob("*.csv")), 60, "the transfer file", worker)
            (path,) = csv.glob("*.csv")
            assert path.read_bytes().endswith(b",3410,2,254,1099,02/29/2024,VAR_DAMAGED,1\r\n")
        finally:
            worker.stop()
        assert healthcheck(compose_env, worker.web_port) != 0
    finally:
        broker.stop()


def compose_secrets(folder: Path) -> Path:
    """The worker's /run/secrets: a file per secret it names. The native run publishes to
    a local folder, so the key's content is never read; that it sits there unread (it
    names no setting) is part of what the run checks."""
    folder.mkdir()
    for name in services()["worker"]["secrets"]:
        (folder / name).write_text("not a key: this run publishes locally\n", encoding="utf-8")
    return folder
