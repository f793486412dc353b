"""The fault suite's stage: a real broker, a real sshd, worker processes to kill, and the
NetSuite simulator and `reconcile` to judge the outcome.

Workers run as production does, on RocksDB, each on a data dir of its own; a restarted
worker (`restart`) comes back on the data dir of the one it replaces.

Every scenario ends with `assert_exact`: after the simulator has imported everything,
NetSuite's books hold each expected Reference No / External Id exactly once, every
balance is exact, `failed/` is empty in both feeds, `reconcile` finds no drift, and
`rebuild-table` (a dry run) finds the table changelogs equal to a fold of the inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.codec import decode
from schemas.models import CountApproved, EventKind
from sinks.feeds import FEEDS
from streams.cli import main as cli
from streams.config import KafkaConfig, Settings, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import TABLES, TopicNames, changelog_topic, prepare_broker
from streams.kafka.offsets import OffsetReader
from streams.netsuite.books import balances, open_ledger, transactions
from streams.producer.client import Event, VarianceProducer
from tests.factories import SAMPLE_TOML
from tests.faults.traffic import Expected, ExpectedAnalytics, Traffic
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for

WINDOW_SECONDS = 1


@dataclass
class FaultStack:
    tmp_path: Path
    broker: LocalBroker
    sshd: SSHDServer
    known_hosts: Path | None = None
    base_dir: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:8]}")
    # The whole [kafka] body and more sections (a secured broker, other topic names);
    # None: the plain broker's address.
    kafka_toml: str | None = None
    batching_toml: str = ""  # more [batching] settings
    extra_toml: str = ""  # more sections
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The NetSuite base folder, as the SFTP server's disk holds it."""
        return self.sshd.root / self.base_dir

    @property
    def ledger(self) -> Path:
        return self.tmp_path / "netsuite.sqlite"

    @property
    def config(self) -> Path:
        path = self.tmp_path / "config.toml"
        if not path.exists():
            path.write_text(self.config_text(), encoding="utf-8")
        return path

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    def config_text(self, known_hosts: Path | None = None) -> str:
        params = self.sshd.params
        return (
            SAMPLE_TOML
            + f"""
[batching]
window_seconds = {WINDOW_SECONDS}
{self.batching_toml}

[kafka]
{self.kafka_toml or f'bootstrap = "{self.broker.bootstrap}"'}

[sftp]
host = "127.0.0.1"
port = {params.port}
username = "{params.username}"
base_dir = "{self.base_dir}"
private_key = "{params.client_keys[0]}"
known_hosts = "{known_hosts or self.known_hosts or params.known_hosts}"

[publish]
retry_max_seconds = 2

[worker]
store = "rocksdb"
data_dir = "{self.tmp_path / "worker"}"
{self.extra_toml}"""
        )

    def traffic(self, seed: int, prefix: str = "t", products: int = 40) -> Traffic:
        return Traffic(self.settings.netsuite, seed, prefix, products)

    def start_worker(
        self,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        *,
        data_dir: Path | None = None,
    ) -> WorkerProcess:
        number = len(self.workers)
        log = self.tmp_path / f"worker-{number}.log"
        data_dir = data_dir or self.tmp_path / f"data-{number}"
        worker = WorkerProcess(config or self.config, log, env, data_dir=data_dir).start()
        self.workers.append(worker)
        return worker

    def restart(self, worker: WorkerProcess, env: dict[str, str] | None = None) -> WorkerProcess:
        """A replacement for a stopped or killed worker, on the same table state."""
        assert not worker.alive
        return self.start_worker(env, worker.config, data_dir=worker.data_dir)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.kill()

    def publish(self, events: Sequence[Event]) -> None:
        asyncio.run(_publish(self.settings.kafka, events))

    def create_topics(self) -> None:
        """What a worker does first; for events published before any worker runs (Apache
        Kafka creates no topic on its own, Tansu one with the wrong partition count)."""
        asyncio.run(prepare_broker(self.settings.kafka))

    def published_references(self) -> Counter[str]:
        """Reference Nos and External Ids in every file NetSuite could import."""
        found: Counter[str] = Counter()
        for feed in FEEDS:
            for folder in ("csv", "archive", "failed"):
                for path in (self.root / feed.name / folder).glob("*.csv"):
                    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
                    found.update(row[0] for row in rows[1:])
        return found

    def wait_published(
        self, expected: Expected, timeout: float = 120, *, settle: bool = True
    ) -> None:
        want = set(expected.references)
        try:
            wait_for(
                lambda: want <= set(self.published_references()),
                timeout,
                f"{len(want)} references to be published",
                *self.workers,
            )
        except AssertionError as exc:
            missing = sorted(want - set(self.published_references()))
            raise AssertionError(f"{len(missing)} never published: {missing[:30]}\n{exc}") from None
        if settle:
            time.sleep(3 * WINDOW_SECONDS)  # anything extra would show up now

    def import_all(self) -> None:
        code = cli(
            ["netsuite-sim", "--config", str(self.config), "--ledger", str(self.ledger), "--once"]
        )
        assert code == 0

    def assert_exact(self, expected: Expected) -> None:
        """NetSuite holds every expected row exactly once, and nothing else."""
        self.import_all()
        with open_ledger(self.ledger) as connection:
            booked = Counter(t.reference for t in transactions(connection))
            books = {key: value for key, value in balances(connection).items() if value}
        duplicates = {ref: n for ref, n in booked.items() if n > 1}
        assert not duplicates, f"imported more than once: {duplicates}"
        assert set(booked) == set(expected.references), (
            f"missing {sorted(set(expected.references) - set(booked))[:10]}, "
            f"extra {sorted(set(booked) - set(expected.references))[:10]}"
        )
        assert books == expected.nonzero_balances()
        for feed in FEEDS:
            assert not list((self.root / feed.name / "failed").iterdir()), (
                f"{feed.name}/failed is not empty"
            )
        code = cli(["reconcile", "--config", str(self.config), "--ledger", str(self.ledger)])
        assert code == 0, "reconcile found drift"
        self.wait_caught_up()
        self.assert_tables_exact()
        if expected.analytics is not None:
            self.assert_analytics(expected.analytics)

    def wait_caught_up(self, timeout: float = 120) -> None:
        """Until the group has committed every input offset: every event is durable in the
        tables (rows reach csv/ before their table writes may be durable)."""
        live = [worker for worker in self.workers if worker.alive]
        if not live:
            return
        wait_for(
            lambda: asyncio.run(_lag(self.settings.kafka)) == 0,
            timeout,
            "the group to commit every input offset",
            *live,
        )

    def aborted_changelog_records(self) -> int:
        """Changelog records that a reader of uncommitted records sees and a committed
        reader does not: writes of aborted (fenced) transactions."""
        return asyncio.run(_aborted(self.settings.kafka))

    def dead_letter_ids(self) -> Counter[str]:
        """The event id of every committed dead letter in the DLQ (values are Avro)."""
        return asyncio.run(_dead_letter_ids(self.settings.kafka))

    def assert_dead_letters_once(self, event_ids: Sequence[str]) -> None:
        """The DLQ holds each of `event_ids` exactly once, and nothing else."""
        found = self.dead_letter_ids()
        doubled = [event for event, n in found.items() if n > 1]
        missing, extra = set(event_ids) - set(found), set(found) - set(event_ids)
        assert found == Counter(event_ids), (
            f"dead letters: doubled {doubled}, missing {sorted(missing)}, extra {sorted(extra)}"
        )

    def assert_analytics(self, expected: ExpectedAnalytics) -> None:
        """`variance-sync report` equals the fold of the distinct events: every event once."""
        config = ["--config", str(self.config), "--json"]
        variances = self._json(["report", *config, "--by", "facility,product,reason,day"])
        wanted = expected.report()
        extra = [row for row in variances if row not in wanted]
        missing = [row for row in wanted if row not in variances]
        assert variances == wanted, f"report differs: has {extra[:5]}, lacks {missing[:5]}"
        accuracy = ["report", *config, "--accuracy", "--by", "facility,product,day"]
        assert self._json(accuracy) == expected.accuracy(), "accuracy differs"

    @staticmethod
    def _json(argv: list[str]) -> Any:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli(argv) == 0, argv
        return json.loads(out.getvalue())

    def assert_tables_exact(self) -> None:
        """The table changelogs, which any next owner recovers, equal a fold of the inputs."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli(["rebuild-table", "--json", "--config", str(self.config)])
        # Every worker's gap, skip and halt lines, from the whole log: a difference here
        # is a lost or doubled table write, and its cause is usually far back in a log.
        clues = "".join(
            f"\n--- {w.log_file.name}\n" + "\n".join(_clues(w.log_file)) for w in self.workers
        )
        assert code == 0, f"rebuild-table found differences: {out.getvalue()[-3000:]}{clues}"

    def wait_sole_owner(self, worker: WorkerProcess, timeout: float = 60) -> None:
        """Until `worker` holds every input partition and is ready: after its peer left, its
        `/ready` may still answer from before the rebalance, and the positions it serves
        for partitions it does not hold come from its standby copies."""
        kafka = self.settings.kafka
        everything = {
            (topic, partition)
            for topic in TopicNames.from_config(kafka).inputs
            for partition in range(kafka.partitions)
        }

        def sole_owner() -> bool:
            status, text = worker.text("/metrics")
            held = {
                (sample.labels["topic"], int(sample.labels["partition"]))
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "variance_sync_partition_status"
            }
            return status == 200 and held == everything and worker.get("/ready")[0] == 200

        wait_for(sole_owner, timeout, "the worker to hold every input partition", worker)

    def assert_positions(self, worker: WorkerProcess, expected: Expected) -> None:
        """What `worker` serves for every position is the fold of the distinct events."""
        wrong = {}
        for (facility, product), (net, exported) in expected.positions.items():
            status, position = worker.get(f"/inventory/{facility}/{product}")
            served = (
                (position["net_variance"], position["exported_variance"]) if status == 200 else None
            )
            if served != (net, exported):
                wrong[(facility, product)] = (served, (net, exported))
        assert not wrong, f"{len(wrong)} positions differ (served, expected): {wrong}"


async def _publish(kafka: KafkaConfig, events: Sequence[Event]) -> None:
    async with VarianceProducer(kafka=kafka) as producer:
        for start in range(0, len(events), 50):
            await producer.publish_many(events[start : start + 50])


def halted(worker: WorkerProcess) -> dict[int, str]:
    """The worker's halted partition numbers and why, as `/ready` shows them now."""
    status, body = worker.get("/ready")
    if status != 503:
        return {}
    return {h["partition"]: h["reason"] for h in body["halted_partitions"]}


def wait_halted(
    worker: WorkerProcess, timeout: float, partition: int | None = None
) -> dict[int, str]:
    """The first `/ready` that shows `partition` (else any partition) halted. A halt lifts
    for each retry, which halts it again if the cause remains: a second look may miss it."""
    seen: dict[int, str] = {}

    def shown() -> bool:
        seen.clear()
        seen.update(halted(worker))
        return partition in seen if partition is not None else bool(seen)

    wait_for(
        shown, timeout, f"partition {partition if partition is not None else 'any'} to halt", worker
    )
    return dict(seen)


def count_rows(events: Sequence[Event]) -> int:
    return sum(len(e.lines) if isinstance(e, CountApproved) else 1 for e in events)


async def _dead_letter_ids(kafka: KafkaConfig) -> Counter[str]:
    found: Counter[str] = Counter()
    tp = TopicPartition(kafka.topics.dlq, 0)
    async with OffsetReader(kafka) as reader:
        end = (await reader.high_watermarks([tp]))[tp]
        for record in await reader.records(tp, 0, end):
            kind = (
                EventKind.COUNT_APPROVED
                if b"count" in dict(record.headers).get("variance-sync.source-topic", b"")
                else EventKind.VARIANCE_LOGGED
            )
            found[decode(record.value, kind, None).data["event_id"]] += 1
    return found


async def _aborted(kafka: KafkaConfig) -> int:
    seen = {}
    for isolation in ("read_uncommitted", "read_committed"):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(changelog_topic(kafka.group_id, table), partition)
                for table in TABLES
                for partition in range(kafka.partitions)
            ]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            count = 0
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                count += sum(len(records) for records in batch.values())
            seen[isolation] = count
        finally:
            await consumer.stop()
    return seen["read_uncommitted"] - seen["read_committed"]


async def _lag(kafka: KafkaConfig) -> int:
    async with OffsetReader(kafka) as reader:
        tps = await reader.partitions_of(TopicNames.from_config(kafka).inputs)
        committed = await reader.committed(kafka.group_id, tps)
        marks = await reader.high_watermarks(tps)
    return sum(marks[tp] - (committed[tp] or 0) for tp in tps)


def _clues(log_file: Path) -> list[str]:
    marks = ("came before", "not skipping", "HALTED", "halted", "deleted by the broker")
    if not log_file.exists():
        return []
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if any(mark in line for mark in marks)][-40:]
