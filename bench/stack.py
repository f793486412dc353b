"""A benchmark's own stage: a broker (Tansu, or Apache Kafka with `BENCH_BROKER=kafka`)
and asyncssh's SFTP server, a config for 200 stores, and workers as child processes (each
run under a fresh consumer group and SFTP folder, so that every run reads the whole
backlog again)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition

from bench.workload import FACILITIES, facilities
from sinks.feeds import FEEDS
from streams.config import KafkaConfig, NetSuiteConfig, Settings, load_settings
from streams.devstack.local_broker import EmbeddedBroker, LocalBroker, free_port
from streams.devstack.local_kafka import KafkaBroker, missing_parts
from streams.devstack.sftp_server import EmbeddedSFTPServer
from streams.kafka.broker import TopicNames, prepare_broker
from streams.kafka.offsets import OffsetReader
from streams.producer.client import Event, VarianceProducer

BROKER = os.environ.get("BENCH_BROKER", "tansu")
# On Kafka the tests' group timing: a killed worker's partitions move within seconds, as on
# Tansu, rather than after Faust's default 60 s session (B4 would measure that wait).
KAFKA_GROUP_TIMING = {
    "VARIANCE_SYNC_KAFKA__SESSION_TIMEOUT_SECONDS": "6",
    "VARIANCE_SYNC_KAFKA__HEARTBEAT_INTERVAL_SECONDS": "1",
    "VARIANCE_SYNC_KAFKA__REBALANCE_TIMEOUT_SECONDS": "10",
}

CONFIG = """
[netsuite]
subsidiary_id = "1"
adjustment_account_id = "927"
file_prefix = "bench"
timezone = "America/Chicago"
synced_reasons = ["VAR_LOST", "VAR_STOLEN", "VAR_DAMAGED", "VAR_FOUND"]

[netsuite.variance_locations]
VAR_DAMAGED = "1099"
VAR_STOLEN = "1098"

[netsuite.facilities]
{facilities}
"""


@dataclass
class BenchStack:
    root: Path
    broker: LocalBroker
    sftp: EmbeddedSFTPServer
    config: Path
    _rows_in: dict[Path, int] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @functools.cached_property
    def settings(self) -> Settings:
        return load_settings(self.config, {"kafka": {"bootstrap": self.bootstrap}})

    @property
    def netsuite(self) -> NetSuiteConfig:
        return self.settings.netsuite

    async def publish(self, events: Sequence[Event]) -> None:
        async with VarianceProducer(kafka=KafkaConfig(bootstrap=self.bootstrap)) as producer:
            for start in range(0, len(events), 500):
                await producer.publish_many(events[start : start + 500])

    def worker_env(self, run: str, **overrides: str) -> dict[str, str]:
        """A worker in its own group, publishing to its own SFTP folder."""
        (self.root / run).mkdir(exist_ok=True)
        return {
            "VARIANCE_SYNC_CONFIG": str(self.config),
            "VARIANCE_SYNC_KAFKA__BOOTSTRAP": self.bootstrap,
            "VARIANCE_SYNC_KAFKA__GROUP_ID": f"bench-{run}",
            "VARIANCE_SYNC_PUBLISH__DESTINATION": "sftp",
            "VARIANCE_SYNC_SFTP__HOST": self.sftp.host,
            "VARIANCE_SYNC_SFTP__PORT": str(self.sftp.port),
            "VARIANCE_SYNC_SFTP__USERNAME": self.sftp.username,
            "VARIANCE_SYNC_SFTP__BASE_DIR": run,
            "VARIANCE_SYNC_SFTP__PRIVATE_KEY": str(self.sftp.client_key),
            "VARIANCE_SYNC_SFTP__KNOWN_HOSTS": str(self.sftp.known_hosts),
            "VARIANCE_SYNC_WORKER__STORE": "memory",
            "VARIANCE_SYNC_WORKER__DATA_DIR": str(self.root / run / "worker"),
            "VARIANCE_SYNC_WORKER__WEB_PORT": str(free_port()),
            "VARIANCE_SYNC_WORKER__LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warn"),
            "BENCH_BROKER": BROKER,
            **(KAFKA_GROUP_TIMING if BROKER == "kafka" else {}),
            **overrides,
        }

    def start(self, argv: Sequence[str], env: dict[str, str], log_name: str) -> Child:
        log = self.root / f"{log_name}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [sys.executable, *argv],
                env={**os.environ, **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        return Child(process, log)

    def start_worker(self, run: str, **overrides: str) -> Child:
        return self.start(["-m", "streams.cli", "worker"], self.worker_env(run, **overrides), run)

    async def input_partitions(self, reader: OffsetReader) -> list[TopicPartition]:
        return await reader.partitions_of(TopicNames.from_config(self.settings.kafka).inputs)

    def csv_rows(self, run: str) -> int:
        """Data rows in `csv/` of both feeds, as NetSuite would see them right now."""
        base = self.sftp.root / run
        for feed in FEEDS:
            folder = base / feed.csv_dir
            for path in folder.glob("*.csv") if folder.is_dir() else ():
                if path not in self._rows_in:
                    # A file appears in csv/ whole (renamed in) and never changes there.
                    self._rows_in[path] = max(0, path.read_bytes().count(b"\n") - 1)
        return sum(rows for path, rows in self._rows_in.items() if path.is_relative_to(base))


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        # utime and stime: the 14th and 15th fields of stat(5), 12th and 13th after the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.log.name} exited with {self.process.returncode}:\n{tail}")


async def wait_until(condition: Callable[[], bool], child: Child, limit: float, what: str) -> float:
    """Poll `condition()` until true; return the monotonic time it first held."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        child.check_alive()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out after {limit:.0f}s waiting for {what}")


async def wait_ready(child: Child, env: dict[str, str], limit: float = 120) -> float:
    """Wait for the worker's /ready to answer 200; return when it did."""
    url = f"http://127.0.0.1:{env['VARIANCE_SYNC_WORKER__WEB_PORT']}/ready"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    return await wait_until(ready, child, limit, "the worker to be ready")


@contextlib.asynccontextmanager
async def bench_stack(stores: int = FACILITIES) -> AsyncIterator[BenchStack]:
    with tempfile.TemporaryDirectory(prefix="variance-sync-bench-") as tmp:
        root = Path(tmp)
        config = root / "config.toml"
        mapped = "\n".join(f'{name} = "{loc}"' for name, loc in facilities(stores).items())
        config.write_text(CONFIG.format(facilities=mapped), encoding="utf-8")
        broker = bench_broker(root)
        broker.start()
        sftp = EmbeddedSFTPServer(root=root / "sftp", state_dir=root / "ssh", port=free_port())
        try:
            await sftp.start()
            stack = BenchStack(root, broker, sftp, config)
            await prepare_broker(stack.settings.kafka)
            yield stack
        finally:
            await sftp.stop()
            broker.stop()
            keep = os.environ.get("BENCH_KEEP_LOGS")
            if keep:
                shutil.copytree(root, keep, dirs_exist_ok=True, ignore=_not_logs)


def bench_broker(root: Path) -> LocalBroker:
    if BROKER == "tansu":
        return EmbeddedBroker(free_port(), log_file=root / "tansu.log")
    if BROKER != "kafka":
        raise SystemExit(f"BENCH_BROKER must be tansu or kafka, not {BROKER!r}")
    problem = missing_parts(KafkaBroker(0, root).jars)
    if problem is not None:
        raise SystemExit(f"bench: {problem}")
    return KafkaBroker(free_port(), root / "kafka", log_file=root / "kafka.log")


def _not_logs(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith(".log") and not Path(folder, n).is_dir()]


def run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"
