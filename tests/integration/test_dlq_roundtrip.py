"""The DLQ round trip on real parts: Tansu, a worker process, and `variance-sync dlq`.

A variance for an unmapped facility and an unreadable body are dead-lettered; after the
"fix" (a config that maps the facility) the first is re-driven and lands in NetSuite's
folder once, and the second fails again and comes back carrying both errors.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.codec import encode_avro
from sinks.naming import parse_batch_file_name
from streams.cli import main
from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.kafka.offsets import OffsetReader
from tests.factories import SAMPLE_TOML, variance
from tests.fixtures.broker import broker
from tests.fixtures.worker import WorkerProcess

__all__ = ["broker"]

VARIANCE_TOPIC = "hotwax.inventory.variance-logged"
GARBAGE = b"\xc3\x01\x00\x01"
UNMAPPED = "unknown facility 'STORE_9': the event has no netsuite_location_id and "
TRUNCATED = "truncated header: 4 bytes"


def write_config(tmp_path: Path, broker: LocalBroker, *, fixed: bool) -> Path:
    # SAMPLE_TOML ends inside [netsuite.facilities], so the fix is one more line there.
    text = (
        SAMPLE_TOML
        + ('STORE_9 = "909"\n' if fixed else "")
        + f"""
[batching]
window_seconds = 1

[kafka]
bootstrap = "{broker.bootstrap}"

[publish]
destination = "local"
local_dir = "{tmp_path / "netsuite"}"

[worker]
store = "rocksdb"
data_dir = "{tmp_path / "worker"}"
"""
    )
    (tmp_path / "netsuite").mkdir(exist_ok=True)  # the mounted share that must exist
    path = tmp_path / ("fixed.toml" if fixed else "broken.toml")
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["dlq", *argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def listing(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    code, out, err = cli(capsys, config, "list", "--json")
    assert (code, err) == (0, "")
    data: dict[str, Any] = json.loads(out)
    return data


def table_row(out: str, first: str, rest: str, *, regex: bool = False) -> bool:
    """Whether a table row starts with `first` and ends with `rest`."""
    tail = rest if regex else re.escape(rest)
    return re.search(rf"^\s*{re.escape(first)}\s+{tail}\s*$", out, re.MULTILINE) is not None


def wait_until(condition: Any, timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()}")


def transfer_rows(tmp_path: Path) -> list[tuple[str, list[str]]]:
    """(file name, row) for every row in the transfer feed's csv/ folder."""
    rows = []
    for path in sorted((tmp_path / "netsuite" / "inventorytransfer" / "csv").glob("*.csv")):
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        rows += [(path.name, row) for row in lines[1:]]
    return rows


async def publish_bad_events(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        unmapped = variance(-1, "VAR_DAMAGED", facility="STORE_9", event_id="store9-1")
        await producer.send_and_wait(VARIANCE_TOPIC, encode_avro(unmapped), key=b"STORE_9")
        await producer.send_and_wait(VARIANCE_TOPIC, GARBAGE, key=b"STORE_1")
    finally:
        await producer.stop()


async def input_marks(bootstrap: str) -> dict[int, int]:
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        marks = await reader.high_watermarks(await reader.partitions(VARIANCE_TOPIC))
    return {tp.partition: mark for tp, mark in marks.items()}


def test_dead_letters_are_listed_redriven_after_a_fix_and_fail_again_with_both_errors(
    tmp_path: Path,
    broker: LocalBroker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: room for whole reasons
    broken = write_config(tmp_path, broker, fixed=False)
    fixed = write_config(tmp_path, broker, fixed=True)
    worker = WorkerProcess(broken, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish_bad_events(broker.bootstrap))
        wait_until(lambda: len(listing(capsys, broken)["records"]) == 2, 30, "2 letters", worker)

        data = listing(capsys, broken)
        by_class = {r["error_class"]: r for r in data["records"]}
        unroutable, decode = by_class["unroutable"], by_class["decode"]
        assert unroutable["error"].startswith(UNMAPPED)
        assert decode["error"].startswith(TRUNCATED)
        assert data["by_class"] == {"unroutable": 1, "decode": 1}
        assert data["by_reason"] == {unroutable["error"]: 1, decode["error"]: 1}
        code, out, _ = cli(capsys, broken, "list")
        assert code == 0
        # Whole reasons, brackets included (not swallowed as Rich markup), in the counts.
        assert table_row(out, "1", unroutable["error"]), out
        assert table_row(out, "1", decode["error"]), out
        assert table_row(out, "1", "unroutable"), out
        worker.stop()

        worker = WorkerProcess(fixed, tmp_path / "worker-fixed.log").start()
        worker.wait_ready()
        before = asyncio.run(input_marks(broker.bootstrap))
        code, out, _ = cli(capsys, fixed, "redrive")
        assert code == 0
        assert f"would re-drive {unroutable['offset']} -> {VARIANCE_TOPIC}[" in out
        assert f"would re-drive {decode['offset']} -> {VARIANCE_TOPIC}[" in out
        assert out.endswith("dry run: 2 to re-drive; nothing sent (--execute sends them)\n")
        time.sleep(4)  # four windows: the original event must not be applied on restart
        assert asyncio.run(input_marks(broker.bootstrap)) == before
        assert transfer_rows(tmp_path) == []
        assert all(not r["redrives"] for r in listing(capsys, fixed)["records"])

        code, out, _ = cli(capsys, fixed, "redrive", "--execute", "--class", "unroutable")
        assert code == 0
        assert out.endswith("re-drove 1 record(s)\n")
        redrive = listing(capsys, fixed)["records"][unroutable["offset"]]["redrives"]
        assert len(redrive) == 1
        target = redrive[0]
        assert (target["target_topic"], target["target_partition"]) == (
            VARIANCE_TOPIC,
            unroutable["source_partition"],
        )
        assert target["error"] == unroutable["error"]
        wait_until(lambda: transfer_rows(tmp_path), 30, "the re-driven row", worker)
        time.sleep(2)  # two more windows: nothing else may arrive
        [(name, csv_row)] = transfer_rows(tmp_path)
        assert csv_row == [
            "VL-store9-1",
            "3410",
            "1",
            "909",
            "1099",
            "02/29/2024",
            "VAR_DAMAGED",
            "1",
        ]
        batch = parse_batch_file_name(name)
        assert batch is not None
        assert batch.partition == target["target_partition"]
        assert batch.start <= target["target_offset"] <= batch.end
        status, position = worker.get("/inventory/STORE_9/10017")
        assert (status, position["net_variance"]) == (200, -1)

        code, out, _ = cli(capsys, fixed, "list")
        redriven = r".*\byes \d{4}-\d\d-\d\d \d\d:\d\dZ\s+unknown facility 'STORE_9'.*"
        assert table_row(out, str(unroutable["offset"]), redriven, regex=True), out
        assert table_row(out, str(decode["offset"]), r".*\bno\s+truncated header.*", regex=True), (
            out
        )
        code, out, _ = cli(capsys, fixed, "redrive", "--execute", "--class", "unroutable")
        assert code == 0
        assert out == (
            f"skipping already re-driven {unroutable['offset']} (--again sends them again)\n"
            "nothing to re-drive\n"
        )

        code, out, _ = cli(capsys, fixed, "redrive", "--execute", "--offset", str(decode["offset"]))
        assert code == 0
        wait_until(lambda: listing(capsys, fixed)["dead_letters"] == 3, 30, "letter 3", worker)
        data = listing(capsys, fixed)
        # The copy that failed again is the same source event: two events, three letters.
        assert data["total"] == 2
        again = next(r for r in data["records"] if r["error_class"] == "decode")
        # DLQ offsets are not consecutive where dead letters are written in transactions
        # (each commit leaves a marker): the third letter is the one after the first two.
        third = again["offset"]
        assert third > max(unroutable["offset"], decode["offset"])
        assert again["dead_letters"] == [decode["offset"], third]
        sent = again["redrives"][0]
        assert again["previous_error"] == decode["error"]
        assert again["error"].startswith(TRUNCATED)
        assert (again["source_partition"], again["source_offset"]) == (
            sent["target_partition"],
            sent["target_offset"],
        )
        code, out, _ = cli(capsys, fixed, "redrive", "--execute", "--class", "decode")
        # A re-drive that failed again is not sent once more without --again.
        assert out == (
            f"skipping already re-driven {third} (--again sends them again)\nnothing to re-drive\n"
        )
        code, out, _ = cli(capsys, fixed, "show", str(third))
        assert code == 0
        assert f"previous error: {decode['error']}\n" in out
        assert "0000  c3 01 00 01" in out

        code, out, err = cli(capsys, fixed, "show", "99")
        assert (code, out) == (2, "")
        assert err == (
            "variance-sync: error: no record at offset 99 in variance-sync.dlq "
            f"(it holds offsets 0-{third})\n"
        )
        # After the documented flow (fix the config, re-drive), the checks agree: the fold
        # skips the first copy, which the worker dead-lettered, and applies the re-driven one.
        ledger = tmp_path / "books.sqlite"
        sim = ["netsuite-sim", "--config", str(fixed), "--ledger", str(ledger), "--once"]
        assert main(sim) == 0
        wait_until(lambda: committed_all(broker.bootstrap), 30, "every offset committed", worker)
        capsys.readouterr()
        verify = ["rebuild-table", "--config", str(fixed)]
        assert main(verify) == 0, capsys.readouterr().out
        books = ["reconcile", "--config", str(fixed), "--ledger", str(ledger)]
        assert main(books) == 0, capsys.readouterr().out
    finally:
        worker.stop()


def committed_all(bootstrap: str) -> bool:
    async def lag() -> int:
        async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
            tps = await reader.partitions(VARIANCE_TOPIC)
            committed = await reader.committed("variance-sync", tps)
            marks = await reader.high_watermarks(tps)
        return sum(marks[tp] - (committed[tp] or 0) for tp in tps)

    return asyncio.run(lag()) == 0
