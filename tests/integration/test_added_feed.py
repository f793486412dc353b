"""A feed added by registering its spec alone (issue 21): the damage feed of
`tests/integration/damage_feed.py`, in no product module, goes end to end.

A real worker (RocksDB store), `netsuite-sim` and `reconcile` run as the CLI with the feed
registered. Damaged variances must become rows of the new feed only, in its own folder,
with its own file label, header and column order, sealed and manifested in the ledger;
every other row stays where it went before. NetSuite's simulator books the new files,
`reconcile` finds no drift, and it does find a damaged row deleted from the books.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from sinks.feeds import ADJUSTMENT, FEEDS, TRANSFER, AnyFeed
from sinks.naming import parse_batch_file_name
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import Event, VarianceProducer
from tests.factories import count, line, stack_config, variance
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.damage_feed import DAMAGE

ROOT = Path(__file__).parents[2]
WITH_DAMAGE = "tests.integration.damage_feed"  # the CLI, with the damage feed registered
PLAIN = "streams.cli"

DAMAGED_ROWS = """\
VL-dmg-1,254,3410,-2,02/29/2024,"Crushed, in transit",1,927
VL-dmg-2,255,3411,3,02/29/2024,VAR_DAMAGED,1,927
VL-dmg-3,255,3412,-1,02/29/2024,'=water damage,1,927
"""
ADJUSTMENT_ROWS = """\
CC1-10017,927,3410,-3,254,02/29/2024,Inventory cycle count by HotWax,1,CC1-10017
CC1-10019,927,3412,5,254,02/29/2024,Inventory cycle count by HotWax,1,CC1-10019
VL-lost-1,927,3411,-1,255,02/29/2024,Lost,1,VL-lost-1
VL-found-1,927,3410,2,254,02/29/2024,VAR_FOUND,1,VL-found-1
"""
TRANSFER_ROWS = """\
VL-stolen-1,3412,1,1098,255,02/29/2024,VAR_STOLEN,1
"""
DAMAGED = ("VL-dmg-1", "VL-dmg-2", "VL-dmg-3")


def traffic() -> list[Event]:
    """Counts and variances of every route: damaged, adjusted, transferred, kept local."""
    return [
        count(
            line("10017", "3410", counted=7, system=10),
            line("10018", "3411", counted=5, system=5),
            line("10019", "3412", counted=9, system=4),
            count_id="CC1",
            event_id="count-1",
        ),
        variance(-2, "VAR_DAMAGED", description="Crushed, in transit", event_id="dmg-1"),
        variance(
            3, "VAR_DAMAGED", facility="STORE_2", product="10018", item="3411", event_id="dmg-2"
        ),
        variance(
            -1,
            "VAR_DAMAGED",
            facility="STORE_2",
            product="10019",
            item="3412",
            description="=water damage",
            event_id="dmg-3",
        ),
        variance(
            -1,
            "VAR_LOST",
            facility="STORE_2",
            product="10018",
            item="3411",
            description="Lost",
            event_id="lost-1",
        ),
        variance(2, "VAR_FOUND", event_id="found-1"),
        variance(
            1, "VAR_STOLEN", facility="STORE_2", product="10019", item="3412", event_id="stolen-1"
        ),
        variance(-4, "VAR_SAMPLE", event_id="sample-1"),
        # A producer's resend: one row all the same.
        variance(-2, "VAR_DAMAGED", description="Crushed, in transit", event_id="dmg-1"),
    ]


async def publish(bootstrap: str, events: list[Event]) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        for event in events:
            await producer.publish(event)


def table(text: str) -> list[list[str]]:
    return sorted(csv.reader(io.StringIO(text)))


def read_feed(netsuite: Path, feed: AnyFeed, folder: str = "csv") -> list[list[str]]:
    """Every row of `feed`'s files in `folder`, checking each file's name and header."""
    rows = []
    for path in sorted((netsuite / feed.name / folder).glob("*.csv")):
        # The test process parses names as the worker made them: with the feed registered.
        with FEEDS.registered(DAMAGE):
            parsed = parse_batch_file_name(path.name)
        assert parsed is not None, path.name
        assert parsed.feed is feed, path.name
        assert path.name.startswith(f"acme_{feed.file_label}_"), path.name
        records = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
        assert tuple(records[0]) == feed.header, path.name
        rows += records[1:]
    return sorted(rows)


def cli(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def reconcile(module: str, config: Path, ledger: Path) -> tuple[int, dict[str, Any]]:
    done = cli(module, "reconcile", "--config", str(config), "--ledger", str(ledger), "--json")
    assert done.returncode in {0, 1}, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_feed_registered_in_a_test_goes_end_to_end(tmp_path: Path, broker: LocalBroker) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    asyncio.run(prepare_broker(load_settings(config).kafka))
    netsuite, ledger = tmp_path / "netsuite", tmp_path / "netsuite-sim.sqlite"
    worker = WorkerProcess(config, tmp_path / "worker.log", module=WITH_DAMAGE).start()
    try:
        worker.wait_ready()
        asyncio.run(publish(broker.bootstrap, traffic()))
        expected: dict[AnyFeed, list[list[str]]] = {
            DAMAGE: table(DAMAGED_ROWS),
            ADJUSTMENT: table(ADJUSTMENT_ROWS),
            TRANSFER: table(TRANSFER_ROWS),
        }
        wait_for(
            lambda: all(len(read_feed(netsuite, f)) >= len(rows) for f, rows in expected.items()),
            90,
            "every row in csv/",
            worker,
        )
        for feed, rows in expected.items():
            assert read_feed(netsuite, feed) == rows, feed

        state = netsuite / "variance-sync"

        def manifests() -> list[dict[str, Any]]:
            folder = state / "manifests" / DAMAGE.name
            return [json.loads(path.read_text(encoding="utf-8")) for path in folder.glob("*.json")]

        # Written after the seal's last file lands in csv/, so waited for on their own.
        wait_for(
            lambda: sum(m["row_count"] for m in manifests()) >= len(DAMAGED),
            30,
            "the damage feed's manifests",
            worker,
        )
        assert {(m["feed"], m["import_map"]) for m in manifests()} == {
            (DAMAGE.name, DAMAGE.import_map)
        }
        assert sum(m["row_count"] for m in manifests()) == len(DAMAGED)
        assert any((state / "ledger" / DAMAGE.name).rglob("*.seal.json"))

        booked = cli(
            WITH_DAMAGE, "netsuite-sim", "--config", str(config), "--ledger", str(ledger), "--once"
        )
        assert booked.returncode == 0, booked.stdout + booked.stderr
        assert not any((netsuite / DAMAGE.csv_dir).iterdir())
        assert read_feed(netsuite, DAMAGE, "archive") == expected[DAMAGE]
        with sqlite3.connect(ledger) as books:
            damage_books = books.execute(
                "SELECT reference, kind, location, to_location, quantity FROM transactions"
                " WHERE reference LIKE 'VL-dmg-%' ORDER BY reference"
            ).fetchall()
        assert damage_books == [
            ("VL-dmg-1", "adjustment", "254", None, -2),
            ("VL-dmg-2", "adjustment", "255", None, 3),
            ("VL-dmg-3", "adjustment", "255", None, -1),
        ]

        def settled() -> bool:
            code, report = reconcile(WITH_DAMAGE, config, ledger)
            assert (code, report["findings"]) == (0, []), report
            return bool(sum(report["in_flight"].values()) == 0)

        wait_for(settled, 90, "every offset committed", worker)
        code, report = reconcile(WITH_DAMAGE, config, ledger)
        assert (code, report["drift_positions"], report["findings"]) == (0, 0, []), report
        assert report["matched"] == report["positions"]
        assert report["imported_rows"] == sum(len(rows) for rows in expected.values())

        # Without the spec registered, reconcile reads the damaged rows as transfers that
        # NetSuite never booked that way: the registration is what made them match.
        code, report = reconcile(PLAIN, config, ledger)
        assert code == 1
        assert {f["reference"] for f in report["findings"]} == set(DAMAGED), report

        # And a real difference in the new feed's books is found.
        with sqlite3.connect(ledger) as books:
            books.execute("DELETE FROM transactions WHERE reference = 'VL-dmg-1'")
            books.execute("UPDATE transactions SET quantity = 4 WHERE reference = 'VL-dmg-2'")
        code, report = reconcile(WITH_DAMAGE, config, ledger)
        assert code == 1
        assert {f["reference"]: f["cause"] for f in report["findings"]} == {
            "VL-dmg-1": "missing",
            "VL-dmg-2": "changed outside variance-sync",
        }, report
    finally:
        worker.stop()
