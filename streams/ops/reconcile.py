"""`variance-sync reconcile`: does NetSuite hold every row variance-sync exported, once?

The variance-sync side is the input topics folded with the worker's own pipeline, row by
row with references and source offsets, and the group's committed offsets. The NetSuite
side is the simulator's SQLite ledger (`--ledger`, dev and tests) or, in
production, a CSV export from a NetSuite saved search dropped on the SFTP server
(`--netsuite-export`, columns in README "Reconciliation"), with the files in `csv/`,
`failed/`, `error/`, `archive/` and NetSuite's cycle-count acknowledgements. Rows in flight
are never differences (`streams.ops.reconcile_model`). Exit 0 with no drift, 1 with drift,
2 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feeds import FEEDS
from sinks.layout import relative_path
from sinks.naming import first_part_name
from sinks.rejections import RejectionReader
from sinks.seal_ledger import manifests_dir
from streams.cli_values import non_negative_number
from streams.config import Settings
from streams.destination_factory import make_destination
from streams.errors import UsageError
from streams.kafka.broker import TopicNames
from streams.kafka.offsets import OffsetReader
from streams.netsuite.books import Transaction, read_transactions
from streams.netsuite.import_rules import ACK_DIR, ACK_HEADER, FileRejected, parse_import_file
from streams.netsuite.saved_search import parse_export
from streams.ops.common import add_connection_options, settings_from
from streams.ops.fold import fold_inputs
from streams.ops.reconcile_model import (
    ExportedRow,
    InFlight,
    KafkaSide,
    NetSuiteSide,
    Report,
    reconcile,
    unbooked_archived,
)
from streams.ops.reconcile_textfile import gauges, write_atomically
from streams.ops.reconcile_textfile import render as render_textfile
from streams.output import print_json

# NetSuite's scheduled imports run every 15 minutes, then queue: a file in csv/ before an
# export was taken may still have been imported after it.
IMPORT_LAG_MINUTES = 30.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "reconcile", help="compare the inventory table with NetSuite's imports"
    )
    add_connection_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ledger",
        dest="netsuite_ledger",
        type=Path,
        metavar="FILE",
        help="the NetSuite simulator's SQLite ledger (as in netsuite-sim --ledger)",
    )
    source.add_argument(
        "--netsuite-export",
        type=_export_path,
        help="NetSuite's CSV export, a path under sftp.base_dir",
    )
    parser.add_argument(
        "--export-taken-at",
        type=_moment,
        metavar="ISO",
        help="when the export's saved search ran (default: when its file was written)",
    )
    parser.add_argument(
        "--import-lag",
        type=non_negative_number,
        default=IMPORT_LAG_MINUTES,
        metavar="MINUTES",
        help="how long NetSuite may take to import a file (default %(default)g): files "
        "published this close before the export may be imported after it",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--textfile",
        "--metrics-file",
        dest="textfile",
        type=Path,
        metavar="PATH",
        help="also write the result here for node-exporter's textfile collector (a .prom file)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report = asyncio.run(gather(args, settings))
    if args.textfile is not None:
        write_atomically(args.textfile, render_textfile(gauges(report, time.time())))
    if args.json:
        print_json(report.to_json())
    else:
        render(report)
    return 0 if report.clean else 1


async def gather(args: argparse.Namespace, settings: Settings) -> Report:
    """Read both sides in the order that `streams.ops.reconcile_model` relies on."""
    kafka = settings.kafka
    destination = make_destination(settings)
    try:
        async with OffsetReader(kafka) as reader:
            tps = await reader.partitions_of(TopicNames.from_config(kafka).inputs)
            committed = await reader.committed(kafka.group_id, tps)
            netsuite = await netsuite_side(args, destination)
            marks = await reader.high_watermarks(tps)
            fold, _ = await fold_inputs(reader, settings, {tp: marks[tp] - 1 for tp in tps})
            starts = await reader.log_starts(tps)
            late = await after_export(args, destination, fold.exported, netsuite)
    except SinkError as exc:
        raise UsageError(
            f"cannot read NetSuite's folders at {destination.description}: {exc}"
        ) from None
    finally:
        await destination.close()
    side = KafkaSide(
        rows=fold.exported,
        committed={(tp.topic, tp.partition): committed[tp] for tp in tps},
        log_starts={(tp.topic, tp.partition): starts[tp] for tp in tps},
    )
    return reconcile(side, replace(netsuite, imported_after_export=late))


def _export_path(text: str) -> str:
    """argparse type: a path relative to the destination's root, checked before anything
    is read."""
    try:
        relative_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date-time") from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +hh:mm)")
    return moment


async def after_export(
    args: argparse.Namespace, dest: Destination, rows: Sequence[ExportedRow], side: NetSuiteSide
) -> frozenset[str]:
    """The archived files holding rows the export lacks that NetSuite may have imported
    after the export was taken: published less than the import lag before it, or later
    (their audit manifests say when)."""
    if args.netsuite_export is None:
        return frozenset()
    taken = args.export_taken_at
    if taken is None:
        written = await dest.modified(args.netsuite_export)
        taken = datetime.fromtimestamp(written or time.time(), UTC)
    earliest = taken - timedelta(minutes=args.import_lag)
    late = set()
    for name in unbooked_archived(rows, side.imported, side.archived):
        published = await published_at(dest, name)
        if published is None or published > earliest:
            late.add(name)
    return frozenset(late)


async def published_at(dest: Destination, name: str) -> datetime | None:
    """When `name` reached csv/, from its batch's audit manifest (None: no manifest). A
    batch has one manifest, named after its first file, whatever its parts."""
    first = first_part_name(name)
    for feed in FEEDS:
        data = await dest.read(f"{manifests_dir(feed)}/{first.removesuffix('.csv')}.json")
        if data is not None:
            return datetime.fromisoformat(json.loads(data)["published_at"])
    return None


async def netsuite_side(args: argparse.Namespace, dest: Destination) -> NetSuiteSide:
    # csv/ before failed/ before the books: a file leaves csv/ only after it is booked, or
    # for failed/, so a file on the move is seen at least once.
    pending = await folder_transactions(dest, "csv")
    failed = await folder_transactions(dest, "failed")
    errors = await error_reasons(dest)
    archived = frozenset([name for feed in FEEDS for name in await dest.list_dir(feed.archive_dir)])
    return NetSuiteSide(
        imported=await books(args, dest),
        pending=pending,
        failed=failed,
        errors=errors,
        archived=archived,
        acknowledged=await acknowledged_counts(dest),
    )


async def books(args: argparse.Namespace, dest: Destination) -> list[Transaction]:
    if args.netsuite_ledger is not None:
        if not args.netsuite_ledger.exists():
            raise UsageError(f"{args.netsuite_ledger}: no such ledger")
        return read_transactions(args.netsuite_ledger)
    data = await dest.read(args.netsuite_export)
    if data is None:
        raise UsageError(f"no NetSuite export at {args.netsuite_export} under {dest.description}")
    return parse_export(data, args.netsuite_export)


async def folder_transactions(dest: Destination, folder: str) -> list[Transaction]:
    found: list[Transaction] = []
    for feed in FEEDS:
        path = f"{feed.name}/{folder}"
        for name in sorted(await dest.list_dir(path)):
            data = await dest.read(f"{path}/{name}")
            try:
                found += parse_import_file(feed, name, data or b"")
            except FileRejected:
                continue  # unreadable rows cannot explain a difference
    return found


async def error_reasons(dest: Destination) -> dict[str, str]:
    """failed/ file name -> NetSuite's first reason, from the error files in error/."""
    return {
        rejection.file: rejection.errors[0]
        for rejection in await RejectionReader(dest).read()
        if rejection.errors
    }


async def acknowledged_counts(dest: Destination) -> frozenset[str]:
    counts: set[str] = set()
    for name in await dest.list_dir(ACK_DIR):
        data = await dest.read(f"{ACK_DIR}/{name}") or b""
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
        if rows and tuple(rows[0]) == ACK_HEADER:
            counts.update(row[0] for row in rows[1:] if row)
    return frozenset(counts)


def render(report: Report) -> None:
    console = Console(markup=False, highlight=False)
    verdict = "no drift" if report.clean else f"{report.drift_positions} position(s) drift"
    console.print(f"reconcile: {report.matched} of {report.positions} position(s) match; {verdict}")
    for stage in InFlight:
        console.print(f"in flight, {stage.value}: {report.in_flight.get(stage, 0)} row(s)")
    if report.findings:
        table = Table(
            *(Column(name, overflow="fold") for name in ("reference", "location", "item")),
            "exported",
            "booked",
            "cause",
            Column("detail", overflow="fold"),
        )
        for f in report.findings:
            table.add_row(
                f.reference, f.location, f.item, str(f.exported), str(f.booked), f.cause, f.detail
            )
        console.print(table)
    if report.older_than_retention:
        console.print(
            f"not compared: {report.older_than_retention} booked row(s) from events older than "
            "the input topics' retention"
        )
    console.print(
        f"cycle counts acknowledged by NetSuite: {report.acknowledged_counts}; "
        f"imported but not acknowledged: {len(report.unacknowledged_counts)}"
    )
