"""`variance-sync reconcile`: compare the inventory table with what NetSuite imported.

The table side is the inventory changelog, read to its true end. The NetSuite side is the
simulator's SQLite ledger (`--netsuite-ledger`, dev and tests) or, in production, a CSV
export from a NetSuite saved search dropped on the SFTP server (`--netsuite-export`,
columns in README "Reconciliation"). Files still in `csv/` and `failed/`, NetSuite's
cycle-count acknowledgements in `inventoryadjustment/cycle_count/`, and the workers'
open batches explain differences. Exit 0 with no drift, 1 with drift, 2 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from rich.console import Console
from rich.table import Table

from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feeds import Feed
from streams.config import Settings
from streams.destination_factory import make_destination
from streams.errors import UsageError
from streams.kafka.broker import TopicNames
from streams.kafka.changelog import INVENTORY_TABLE, changelog_topic, read_changelogs
from streams.kafka.lag_report import read_batch_health
from streams.kafka.offsets import OffsetReader
from streams.netsuite.import_rules import ACK_HEADER, FileRejected, parse_import_file
from streams.netsuite.ledger import Transaction, open_ledger, transactions
from streams.ops.common import add_connection_options, print_json, settings_from
from streams.ops.reconcile_model import NetSuiteSide, Report, expected_from_positions, reconcile

EXPORT_HEADER = ("Type", "Reference No", "Item", "Location", "To Location", "Quantity")
EXPORT_KINDS = {"Inventory Adjustment": "adjustment", "Inventory Transfer": "transfer"}
ACK_DIR = f"{Feed.ADJUSTMENT.value}/cycle_count"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "reconcile", help="compare the inventory table with NetSuite's imports"
    )
    add_connection_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--netsuite-ledger", type=Path, help="the simulator's SQLite ledger")
    source.add_argument(
        "--netsuite-export", help="NetSuite's CSV export, a path under sftp.base_dir"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--metrics-file", type=Path, help="write Prometheus text metrics here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report = asyncio.run(gather(args, settings))
    if args.metrics_file is not None:
        write_metrics(args.metrics_file, report)
    if args.json:
        print_json(report.to_json())
    else:
        render(report)
    return 0 if report.clean else 1


async def gather(args: argparse.Namespace, settings: Settings) -> Report:
    topics = TopicNames.from_config(settings.kafka)
    async with OffsetReader(settings.kafka) as reader:
        (table,) = await read_changelogs(
            reader, {INVENTORY_TABLE: changelog_topic(settings.kafka.group_id, INVENTORY_TABLE)}
        )
        health = await read_batch_health(reader, topics.status)
    expected = expected_from_positions(table.values.values())
    unpublished = sum(batch.rows for _, batch in health.open_batches)
    destination = make_destination(settings)
    try:
        side = await netsuite_side(args, destination)
    except SinkError as exc:
        raise UsageError(
            f"cannot read NetSuite's folders at {destination.description}: {exc}"
        ) from None
    finally:
        await destination.close()
    return reconcile(expected, side, unpublished)


async def netsuite_side(args: argparse.Namespace, dest: Destination) -> NetSuiteSide:
    if args.netsuite_ledger is not None:
        if not args.netsuite_ledger.exists():
            raise UsageError(f"{args.netsuite_ledger}: no such ledger")
        with open_ledger(args.netsuite_ledger) as connection:
            imported = transactions(connection)
    else:
        data = await dest.read(args.netsuite_export)
        if data is None:
            raise UsageError(
                f"no NetSuite export at {args.netsuite_export} under {dest.description}"
            )
        imported = parse_export(data, args.netsuite_export)
    return NetSuiteSide(
        imported=imported,
        pending=await folder_transactions(dest, "csv"),
        failed=await folder_transactions(dest, "failed"),
        acknowledged=await acknowledged_counts(dest),
    )


async def folder_transactions(dest: Destination, folder: str) -> list[Transaction]:
    found: list[Transaction] = []
    for feed in Feed:
        path = f"{feed.value}/{folder}"
        for name in sorted(await dest.list_dir(path)):
            data = await dest.read(f"{path}/{name}")
            try:
                found += parse_import_file(feed, name, data or b"")
            except FileRejected:
                continue  # unreadable rows cannot explain a difference
    return found


async def acknowledged_counts(dest: Destination) -> frozenset[str]:
    counts: set[str] = set()
    for name in await dest.list_dir(ACK_DIR):
        data = await dest.read(f"{ACK_DIR}/{name}") or b""
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
        if rows and tuple(rows[0]) == ACK_HEADER:
            counts.update(row[0] for row in rows[1:] if row)
    return frozenset(counts)


def parse_export(data: bytes, name: str) -> list[Transaction]:
    """NetSuite's saved-search export: one line per transaction line of this integration."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or tuple(rows[0]) != EXPORT_HEADER:
        raise UsageError(f"{name}: the header must be {','.join(EXPORT_HEADER)}")
    found = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(EXPORT_HEADER) or row[0] not in EXPORT_KINDS:
            raise UsageError(f"{name}: line {number} is not a {' or '.join(EXPORT_KINDS)} line")
        kind, reference, item, location, to_location, quantity = row
        try:
            amount = int(quantity)
        except ValueError:
            raise UsageError(
                f"{name}: line {number}: quantity {quantity!r} is not an integer"
            ) from None
        found.append(
            Transaction(
                EXPORT_KINDS[kind],
                reference,
                item,
                location,
                to_location or None,
                amount,
                "",
                "",
                name,
            )
        )
    return found


def write_metrics(path: Path, report: Report) -> None:
    registry = CollectorRegistry()
    gauges = {
        "variance_sync_reconcile_drift_positions": (
            "Store positions that differ.",
            len(report.differences),
        ),
        "variance_sync_reconcile_drift_units": (
            "Sum of absolute differences, in units.",
            report.drift_units,
        ),
        "variance_sync_reconcile_double_imports": (
            "References booked more than once.",
            len(report.double_imports),
        ),
        "variance_sync_reconcile_last_run_timestamp_seconds": (
            "When reconcile last ran.",
            time.time(),
        ),
    }
    for name, (text, value) in gauges.items():
        Gauge(name, text, registry=registry).set(value)
    write_to_textfile(str(path), registry)


def render(report: Report) -> None:
    console = Console(markup=False, highlight=False)
    verdict = "no drift" if report.clean else f"{len(report.differences)} position(s) drift"
    console.print(f"reconcile: {report.matched} store position(s) match; {verdict}")
    if report.differences:
        table = Table("location", "item", "expected", "in NetSuite", "drift", "likely cause")
        for d in report.differences:
            table.add_row(
                d.location, d.item, str(d.expected), str(d.imported), f"{d.drift:+d}", d.cause
            )
        console.print(table)
    for reference, times in sorted(report.double_imports.items()):
        console.print(f"double import: {reference} booked {times} times")
    console.print(
        f"cycle counts acknowledged by NetSuite: {report.acknowledged_counts}; "
        f"imported but not acknowledged: {len(report.unacknowledged_counts)}"
    )
    if report.unpublished_rows:
        console.print(
            f"rows waiting in open batches (not published yet): {report.unpublished_rows}"
        )
