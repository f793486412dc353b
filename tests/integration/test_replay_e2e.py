"""A replay never posts twice to NetSuite, end to end on real parts: Tansu, worker
processes and OpenSSH's sshd.

A worker publishes a known set of events; NetSuite (played by this test) moves some files
to archive/ and one to failed/. The worker stops, the group is replayed to the earliest
offsets, and a new worker re-reads everything. NetSuite's folders must not change by a
byte, and the inventory positions must be exactly as they were.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from schemas.models import Event
from streams.cli import main
from streams.config import KafkaConfig
from streams.devstack.local_broker import EmbeddedBroker, LocalBroker
from streams.kafka.offsets import OffsetReader
from streams.producer.client import VarianceProducer
from tests.factories import SAMPLE_TOML, count, line, variance
from tests.fixtures.broker import broker
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for

__all__ = ["broker"]

WINDOW = 2
INPUTS = ("hotwax.inventory.count-approved", "hotwax.inventory.variance-logged")
FEEDS = ("inventoryadjustment", "inventorytransfer")
NETSUITE_FOLDERS = ("csv", "archive", "failed")
FACILITIES = {f"STORE_{n}": str(253 + n) for n in range(1, 7)}
PRODUCTS = {"10017": "3410", "10018": "3411", "10019": "3412"}


def config(tmp_path: Path, broker: LocalBroker, sshd: SSHDServer, base_dir: str) -> Path:
    params = sshd.params
    path = tmp_path / "config.toml"
    path.write_text(
        SAMPLE_TOML
        + f"""
[batching]
window_seconds = {WINDOW}

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
""",
        encoding="utf-8",
    )
    return path


def first_round() -> list[Event]:
    """Per facility: a count (one non-zero line), a damaged and a found variance."""
    events: list[Event] = []
    for n, (facility, location) in enumerate(FACILITIES.items(), start=1):
        events += [
            count(
                line("10017", "3410", counted=7, system=10),
                line("10018", "3411", counted=5, system=5),
                facility=facility,
                location=location,
                count_id=f"CC{n}",
                event_id=f"count-{n}",
            ),
            variance(-2, "VAR_DAMAGED", facility=facility, location=location, event_id=f"dmg-{n}"),
            variance(
                1,
                "VAR_FOUND",
                facility=facility,
                location=location,
                product="10019",
                item="3412",
                event_id=f"found-{n}",
            ),
        ]
    return events


def second_round() -> list[Event]:
    """Per facility: a lost variance (exported) and a sample (table only)."""
    events: list[Event] = []
    for n, (facility, location) in enumerate(FACILITIES.items(), start=1):
        common: dict[str, Any] = {"facility": facility, "location": location}
        events += [
            variance(-1, "VAR_LOST", **common, product="10019", item="3412", event_id=f"lost-{n}"),
            variance(-3, "VAR_SAMPLE", **common, product="10018", item="3411", event_id=f"smp-{n}"),
        ]
    return events


EXPECTED_REFS = sorted(
    [f"CC{n}-10017" for n in range(1, 7)]
    + [f"VL-{kind}-{n}" for kind in ("found", "lost", "dmg") for n in range(1, 7)]
)


async def publish(bootstrap: str, events: list[Event]) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish_many(events)


def netsuite_files(root: Path) -> dict[str, bytes]:
    """Every file NetSuite can see or has taken, by path under the base folder."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for feed in FEEDS
        for folder in NETSUITE_FOLDERS
        for path in sorted((root / feed / folder).glob("*"))
    }


def references(files: dict[str, bytes]) -> list[str]:
    """The first cell of every data row (Reference No / External Id), over all files."""
    refs: list[str] = []
    for content in files.values():
        rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
        refs += [row[0] for row in rows[1:]]
    return sorted(refs)


def positions(worker: WorkerProcess) -> dict[str, Any]:
    found = {}
    for facility in FACILITIES:
        for product in PRODUCTS:
            status, body = worker.get(f"/inventory/{facility}/{product}")
            assert status == 200, (facility, product, body)
            found[f"{facility}/{product}"] = body
    return found


async def offsets(
    bootstrap: str,
) -> tuple[dict[TopicPartition, int | None], dict[TopicPartition, int]]:
    """The group's committed offsets and the high watermarks of every input partition."""
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        tps = await reader.partitions_of(INPUTS)
        return await reader.committed("variance-sync", tps), await reader.high_watermarks(tps)


def caught_up(bootstrap: str) -> bool:
    committed, marks = asyncio.run(offsets(bootstrap))
    return committed == marks


def nothing_pending(worker: WorkerProcess) -> bool:
    status, body = worker.get("/batches")
    return status == 200 and not body["pending"]


def test_a_replay_from_earliest_posts_nothing_twice(
    tmp_path: Path,
    broker: LocalBroker,
    sshd: SSHDServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base_dir = f"netsuite-{uuid.uuid4().hex[:8]}"
    root = sshd.root / base_dir
    settings = config(tmp_path, broker, sshd, base_dir)
    bootstrap = broker.bootstrap
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    try:
        first.wait_ready()
        asyncio.run(publish(bootstrap, first_round()))
        wait_for(lambda: len(references(netsuite_files(root))) == 18, 60, "round 1", first)
        asyncio.run(publish(bootstrap, second_round()))
        asyncio.run(publish(bootstrap, second_round()[:1]))  # a producer resends one event
        wait_for(lambda: len(references(netsuite_files(root))) == 24, 60, "round 2", first)
        wait_for(lambda: caught_up(bootstrap), 30, "every offset committed", first)
        before_positions = positions(first)
    finally:
        first.stop()
    assert references(netsuite_files(root)) == EXPECTED_REFS
    assert {p["events_applied"] for p in before_positions.values()} == {2}

    # NetSuite imports some files and moves them on; one import fails.
    for feed in FEEDS:
        for folder in ("archive", "failed"):
            (root / feed / folder).mkdir(exist_ok=True)
        published = sorted((root / feed / "csv").glob("*.csv"))
        assert len(published) >= 2, published
        for path in published[::2]:
            path.rename(root / feed / "archive" / path.name)
    leftover = sorted((root / FEEDS[0] / "csv").glob("*.csv"))[0]
    leftover.rename(root / FEEDS[0] / "failed" / leftover.name)
    before_files = netsuite_files(root)
    _, marks = asyncio.run(offsets(bootstrap))

    # Tansu keeps the stopped worker listed when it stopped in generation 0 (see
    # test_replay.py), hence --remove-stale-members there; Kafka lets it leave.
    topics = [arg for topic in INPUTS for arg in ("--topic", topic)]
    argv = ["replay", "--config", str(settings), "--group", "variance-sync", *topics]
    if isinstance(broker, EmbeddedBroker):
        argv.append("--remove-stale-members")
    code = main([*argv, "--to-earliest", "--execute", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["reread"] == sum(marks.values()) == 6 * 3 + 6 * 2 + 1
    committed, _ = asyncio.run(offsets(bootstrap))
    assert set(committed.values()) == {0}

    second = WorkerProcess(settings, tmp_path / "second.log").start()
    try:
        second.wait_ready()
        wait_for(lambda: caught_up(bootstrap), 60, "the replayed events to be committed", second)
        wait_for(lambda: nothing_pending(second), 30, "no pending batch", second)
        time.sleep(2 * WINDOW + 1)  # two more windows: nothing may be published late
        after_positions = positions(second)
        assert nothing_pending(second)
    finally:
        second.stop()
    after_files = netsuite_files(root)
    assert sorted(after_files) == sorted(before_files)
    assert after_files == before_files
    assert references(after_files) == EXPECTED_REFS
    assert after_positions == before_positions
    assert not list((root / FEEDS[0] / ".staging").glob("*"))
    # The tables agree with a fold of the inputs after the replay too.
    assert main(["rebuild-table", "--config", str(settings)]) == 0
