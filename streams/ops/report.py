"""`variance-sync report`: variance by facility, reason, day and product, or the inventory
record accuracy of cycle counts, from the inventory table's changelog
(`streams.core.analytics`)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from streams.config import Settings
from streams.core.analytics import ACCURACY_KEYS, KEYS, Fact, accuracy_report, facts
from streams.core.analytics import variance_report as group_variances
from streams.errors import UsageError
from streams.kafka.broker import INVENTORY_TABLE, changelog_topic
from streams.kafka.changelog import read_changelogs
from streams.kafka.offsets import OffsetReader
from streams.ops.common import add_connection_options, settings_from
from streams.ops.report_plot import check_target, plot
from streams.output import print_json


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report", help="variance by facility, reason, day and product; count accuracy"
    )
    add_connection_options(parser)
    parser.add_argument(
        "--by",
        type=_keys,
        default=("facility", "reason"),
        metavar="KEY[,KEY...]",
        help=f"group by these keys: {', '.join(KEYS)} (default facility,reason)",
    )
    parser.add_argument("--since", type=_day, help="first business day, YYYY-MM-DD")
    parser.add_argument("--until", type=_day, help="last business day, YYYY-MM-DD")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--format", choices=["table", "csv"], default="table")
    output.add_argument("--json", action="store_true", help="print an array of JSON objects")
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="lines counted, matched and the record accuracy, instead of variances",
    )
    parser.add_argument(
        "--plot", type=Path, metavar="FILE", help="also draw the chart into FILE.png or FILE.svg"
    )
    parser.set_defaults(handler=run)


def _keys(text: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in keys if key not in KEYS]
    if not keys or unknown or len(set(keys)) != len(keys):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give distinct keys among {', '.join(KEYS)}, comma-separated"
        )
    return keys


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def run(args: argparse.Namespace) -> int:
    if args.accuracy and (bad := [k for k in args.by if k not in ACCURACY_KEYS]):
        raise UsageError(f"--accuracy groups by {', '.join(ACCURACY_KEYS)}, not {', '.join(bad)}")
    if args.plot is not None:
        check_target(args.plot)
    found = asyncio.run(read_facts(settings_from(args)))
    report = accuracy_report if args.accuracy else group_variances
    rows = report(found, args.by, args.since, args.until)
    show(rows, "json" if args.json else args.format)
    if args.plot is not None:
        plot(rows, args.by, args.accuracy, args.plot)
    return 0


async def read_facts(settings: Settings) -> list[Fact]:
    group = settings.kafka.group_id
    async with OffsetReader(settings.kafka) as reader:
        (table,) = await read_changelogs(
            reader, {INVENTORY_TABLE: changelog_topic(group, INVENTORY_TABLE)}
        )
    return list(facts(table.values.values()))


def show(rows: Sequence[dict[str, Any]], form: str) -> None:
    if form == "json":
        print_json(list(rows))
        return
    columns = list(rows[0]) if rows else []
    if form == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([row[c] for c in columns] for row in rows)
        return
    numeric = {"units", "events", "counted", "matched", "accuracy"}
    table = Table(
        *(Column(c, justify="right" if c in numeric else "left", overflow="fold") for c in columns)
    )
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    console = Console(markup=False, highlight=False)
    console.print(table if rows else "no variances in the table for this selection")
