"""`reconcile` on a live stack: a worker on RocksDB, the NetSuite simulator importing, and
traffic flowing. Run after run it reports no drift, while rows are in flight; then each
kind of real difference, made on purpose, is reported with its reference and cause."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sinks.feeds import ADJUSTMENT
from sinks.rejections import ERROR_HEADER
from streams.cli import main
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import Event, VarianceProducer
from tests.factories import count, line, stack_config, variance
from tests.fixtures.worker import WorkerProcess, wait_for

RUNS_UNDER_TRAFFIC = 4


def traffic() -> Iterator[Event]:
    """Counts and variances over a few positions, both feeds, duplicates included."""
    for n in itertools.count():
        product, item = f"100{n % 7}", f"34{n % 7}"
        facility = "STORE_1" if n % 2 else "STORE_2"
        if n % 5 == 0:
            yield count(
                line(product, item, counted=n % 4, system=2),
                facility=facility,
                count_id=f"CC{n}",
            )
        else:
            reason = ("VAR_DAMAGED", "VAR_LOST", "VAR_FOUND")[n % 3]
            quantity = 2 if reason == "VAR_FOUND" else -1
            event = variance(quantity, reason, facility=facility, product=product, item=item)
            yield event
            if n % 11 == 0:
                yield event  # a producer's duplicate: nothing more to reconcile


class Traffic(threading.Thread):
    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        asyncio.run(self._send())

    async def _send(self) -> None:
        async with VarianceProducer(kafka=KafkaConfig(bootstrap=self.bootstrap)) as producer:
            for event in traffic():
                if self.stop.is_set():
                    return
                await producer.publish(event)
                self.sent += 1
                await asyncio.sleep(0.05)


def reconcile(
    capsys: pytest.CaptureFixture[str], config: Path, ledger: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    args = ["reconcile", "--config", str(config), "--ledger", str(ledger), "--json"]
    code = main([*args, *extra])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, json.loads(out)


def start_simulator(config: Path, ledger: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streams.cli", "netsuite-sim", "--config", str(config)]
    with log.open("ab") as handle:
        return subprocess.Popen(
            [*command, "--ledger", str(ledger), "--interval", "0.5"],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@dataclass
class LiveStack:
    config: Path
    ledger: Path
    worker: WorkerProcess
    simulator: subprocess.Popen[bytes]
    sender: Traffic


@contextlib.contextmanager
def live_stack(tmp_path: Path, broker: LocalBroker) -> Iterator[LiveStack]:
    """A worker, NetSuite's simulator importing its files, and traffic that keeps coming,
    once the first imports are in."""
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    asyncio.run(prepare_broker(load_settings(config).kafka))
    ledger = tmp_path / "netsuite-sim.sqlite"
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    simulator = start_simulator(config, ledger, tmp_path / "sim.log")
    sender = Traffic(broker.bootstrap)
    try:
        worker.wait_ready()
        sender.start()
        wait_for(lambda: ledger.exists() and sender.sent > 40, 60, "imports", worker)
        yield LiveStack(config, ledger, worker, simulator, sender)
    finally:
        sender.stop.set()
        simulator.terminate()
        worker.stop()


def test_reconcile_is_clean_under_traffic_and_names_each_real_difference(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    with live_stack(tmp_path, broker) as live:
        config, ledger, worker = live.config, live.ledger, live.worker
        simulator, sender = live.simulator, live.sender
        in_flight = []
        for _ in range(RUNS_UNDER_TRAFFIC):
            code, report = reconcile(capsys, config, ledger)
            assert (code, report["drift_positions"], report["findings"]) == (0, 0, []), report
            in_flight.append(sum(report["in_flight"].values()))
        assert max(in_flight) > 0, "no run saw a row in flight: the test proves nothing"
        sender.stop.set()
        sender.join(30)

        def settled() -> bool:
            code, report = reconcile(capsys, config, ledger)
            assert code == 0, report
            return bool(sum(report["in_flight"].values()) == 0)

        wait_for(settled, 90, "every row imported", worker)
        simulator.terminate()
        simulator.wait(30)
        expected = make_differences(tmp_path, config, ledger, broker.bootstrap, worker)
        metrics = tmp_path / "reconcile.prom"
        code, report = reconcile(capsys, config, ledger, "--metrics-file", str(metrics))
        assert code == 1
        found = {f["reference"]: f["cause"] for f in report["findings"]}
        assert found == expected, report["findings"]
        assert report["in_flight"] == {"in_csv": 0, "in_variance_sync": 0, "after_export": 0}
        assert "variance_sync_reconcile_drift_positions 0.0" not in metrics.read_text()


def make_differences(
    tmp_path: Path, config: Path, ledger: Path, bootstrap: str, worker: WorkerProcess
) -> dict[str, str]:
    """A row deleted from NetSuite's books, a row booked twice, a manual adjustment, and a
    file rejected into failed/; what reconcile must say about each."""
    with sqlite3.connect(ledger) as books:
        # The oldest bookings: their offsets are long committed.
        query = "SELECT reference FROM transactions WHERE kind = 'adjustment' ORDER BY id LIMIT 2"
        (deleted,), (doubled,) = books.execute(query).fetchall()
        books.execute("DELETE FROM transactions WHERE reference = ?", (deleted,))
        books.execute(
            "INSERT INTO transactions (kind, reference, item, location, to_location, quantity,"
            " date, memo, file, imported_at) SELECT kind, reference, item, location,"
            " to_location, quantity, date, memo, 'again.csv', imported_at"
            " FROM transactions WHERE reference = ?",
            (doubled,),
        )
        books.execute(
            "INSERT INTO transactions (kind, reference, item, location, to_location, quantity,"
            " date, memo, file, imported_at) VALUES ('adjustment', 'ADJ-MANUAL-1', '3410',"
            " '254', NULL, 5, '02/29/2024', 'by hand', '', '')"
        )
    rejected = variance(-1, "VAR_LOST", facility="STORE_1")
    asyncio.run(publish(bootstrap, rejected))
    csv_dir = tmp_path / "netsuite" / ADJUSTMENT.csv_dir
    wait_for(lambda: any(csv_dir.glob("*.csv")), 60, "the file to reject", worker)
    (path,) = csv_dir.glob("*.csv")
    error_dir = tmp_path / "netsuite" / ADJUSTMENT.error_dir
    (error_dir / f"{path.stem}_error.csv").write_text(
        f"{','.join(ERROR_HEADER)}\n{path.name},Invalid item 3410\n", encoding="utf-8"
    )
    shutil.move(path, tmp_path / "netsuite" / ADJUSTMENT.failed_dir / path.name)
    return {
        deleted: "missing",
        doubled: "imported twice",
        "ADJ-MANUAL-1": "changed outside variance-sync",
        f"VL-{rejected.event_id}": "rejected",
    }


async def publish(bootstrap: str, event: Event) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        await producer.publish(event)


EXPORT = "exports/books.csv"


def export_books(config: Path, ledger: Path) -> None:
    argv = ["netsuite-sim", "--config", str(config), "--ledger", str(ledger), "--export", EXPORT]
    assert main(argv) == 0


def reconcile_export(
    capsys: pytest.CaptureFixture[str], config: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    args = ["reconcile", "--config", str(config), "--netsuite-export", EXPORT, "--json"]
    code = main([*args, *extra])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, json.loads(out)


def test_a_netsuite_export_taken_while_files_keep_moving_is_not_drift(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    with live_stack(tmp_path, broker) as live:
        config, ledger, worker = live.config, live.ledger, live.worker
        simulator, sender = live.simulator, live.sender
        export_books(config, ledger)
        capsys.readouterr()
        sent = sender.sent
        # Files keep coming and NetSuite keeps importing them after its export was taken.
        wait_for(lambda: sender.sent > sent + 60, 60, "more traffic", worker)
        sender.stop.set()
        sender.join(30)
        time.sleep(3)  # the last batches reach archive/
        code, report = reconcile_export(capsys, config)
        assert (code, report["findings"]) == (0, []), report
        assert report["in_flight"]["after_export"] > 0, "nothing moved after the export"
        # The rule hides no real difference: an export taken once everything settled, a
        # line missing from it, and no room for late imports.
        simulator.terminate()
        simulator.wait(30)
        assert (
            main(["netsuite-sim", "--config", str(config), "--ledger", str(ledger), "--once"]) == 0
        )
        export_books(config, ledger)
        path = tmp_path / "netsuite" / EXPORT
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        dropped = lines.pop(1)
        path.write_text("".join(lines), encoding="utf-8")
        capsys.readouterr()
        code, report = reconcile_export(capsys, config, "--import-lag", "0")
        assert code == 1
        assert [(f["reference"], f["cause"]) for f in report["findings"]] == [
            (dropped.split(",")[1], "missing")
        ]
