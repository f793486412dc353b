"""`variance-sync lag`: consumer lag, partition status and batch health, for ops staff and
monitoring probes (exit 0 when all is OK, 1 on WARN, 2 on STALL or STOP)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sinks.feeds import FEEDS
from sinks.source_partition import SourcePartition
from streams.cli_values import non_negative_number, positive_number
from streams.config import Settings
from streams.core.lag_status import LagHistory, LagPolicy, Status
from streams.errors import UsageError
from streams.kafka.broker import TopicNames
from streams.kafka.lag_report import GroupReport, build_report, sample_group
from streams.kafka.offsets import OffsetReader
from streams.kafka.status_log import read_batch_health
from streams.ops.common import add_connection_options, settings_from
from streams.output import print_json

Evaluate = Callable[[int], Awaitable[list[GroupReport]]]
STYLES = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.REWIND: "yellow",
    Status.STALL: "red",
    Status.STOP: "bold red",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("lag", help="consumer lag, partition status and batch health")
    add_connection_options(parser)
    parser.add_argument(
        "--group", action="append", help="consumer group (default: kafka.group_id); repeatable"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--watch", type=positive_number, metavar="N", help="refresh every N seconds until Ctrl-C"
    )
    parser.add_argument("--samples", type=int, default=2, help="samples per evaluation (default 2)")
    parser.add_argument(
        "--interval",
        type=non_negative_number,
        default=2.0,
        help="seconds between samples (default 2)",
    )
    parser.add_argument("--warn-after", type=positive_number, help="seconds (default: window + 30)")
    parser.add_argument(
        "--stall-after", type=positive_number, help="seconds (default: 2 x window + 30)"
    )
    parser.add_argument(
        "--stop-after", type=positive_number, help="seconds (default: max(10 x window, 600))"
    )
    parser.set_defaults(handler=run)


def policy_from(args: argparse.Namespace, settings: Settings) -> LagPolicy:
    default = LagPolicy.for_window(settings.batching.window_seconds)
    return LagPolicy(
        warn_after=args.warn_after if args.warn_after is not None else default.warn_after,
        stall_after=args.stall_after if args.stall_after is not None else default.stall_after,
        stop_after=args.stop_after if args.stop_after is not None else default.stop_after,
    )


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise UsageError("--samples must be at least 1")
    return asyncio.run(inspect(args, settings_from(args)))


async def inspect(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or [settings.kafka.group_id]
    topics = TopicNames.from_config(settings.kafka)
    policy = policy_from(args, settings)
    histories = {group: LagHistory() for group in groups}
    async with OffsetReader(settings.kafka) as reader:
        tps = await reader.partitions_of(topics.inputs)
        unknown = [g for g in groups if not await reader.group_exists(g, tps)]
        if unknown:
            listed = ", ".join(await reader.groups()) or "none"
            raise UsageError(f"unknown consumer group {', '.join(unknown)} (known: {listed})")

        async def evaluate_all(samples: int) -> list[GroupReport]:
            for index in range(samples):
                if index:
                    await asyncio.sleep(args.interval)
                for group in groups:
                    histories[group].add(await sample_group(reader, group, tps))
            batches = await read_batch_health(reader, topics.status)
            feeds = [feed.name for feed in FEEDS]
            return [build_report(g, histories[g], policy, batches, feeds) for g in groups]

        if args.watch is None:
            reports = await evaluate_all(args.samples)
            show(reports, args.json)
            return max(r.status.exit_code for r in reports)
        return await watch(args, evaluate_all)


async def watch(args: argparse.Namespace, evaluate: Evaluate) -> int:
    reports: list[GroupReport] = []
    try:
        if sys.stdout.isatty() and not args.json:
            with Live(console=Console(), auto_refresh=False) as live:
                while True:
                    reports = await evaluate(1)
                    live.update(Group(*(render(r) for r in reports)), refresh=True)
                    await asyncio.sleep(args.watch)
        # Into a file or a pipe: every refresh, in turn (JSON: one line each).
        while True:
            reports = await evaluate(1)
            if args.json:
                print(json.dumps([r.to_json() for r in reports], sort_keys=True, default=str))
            else:
                show(reports, as_json=False)
            sys.stdout.flush()
            await asyncio.sleep(args.watch)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return max((r.status.exit_code for r in reports), default=0)


def show(reports: list[GroupReport], as_json: bool) -> None:
    if as_json:
        print_json([r.to_json() for r in reports])
        return
    console = Console()
    for report in reports:
        console.print(render(report))


def render(report: GroupReport) -> Group:
    """The report in 80 columns: one offsets table per topic, names never cut."""
    data = report.to_json()
    status = report.status
    title = f"group {report.group}: [{STYLES[status]}]{status.name}[/]"
    tables = []
    for topic in sorted({row["topic"] for row in data["partitions"]}):
        offsets = Table(title=escape(topic), title_justify="left")
        offsets.add_column("partition", justify="right")
        for column in ("committed", "end", "lag", "oldest unconsumed"):
            offsets.add_column(column, justify="right")
        offsets.add_column("status")
        for row in (r for r in data["partitions"] if r["topic"] == topic):
            row_status = Status[row["status"]]
            offsets.add_row(
                str(row["partition"]),
                _dash(row["committed"]),
                str(row["high_watermark"]),
                str(row["lag"]),
                _age(row["oldest_unconsumed_age_seconds"]),
                f"[{STYLES[row_status]}]{row_status.name}[/]",
            )
        tables.append(offsets)
    batches = data["batches"]
    open_batches = Table(title="open batches", title_justify="left")
    for column in ("worker", "feed", "source", "rows", "age"):
        right = column in ("rows", "age")
        open_batches.add_column(column, justify="right" if right else "left", overflow="fold")
    for batch in batches["open"]:
        # The topic's last part names it here; the JSON output has it whole.
        tag = SourcePartition(batch["topic"], batch["partition"]).tag
        source = f"{tag}[{batch['partition']}]@{batch['first_offset']}"
        feed = str(batch["feed"]).removeprefix("inventory")  # adjustment, transfer
        open_batches.add_row(
            batch["worker"], feed, source, str(batch["rows"]), _age(batch["age_seconds"])
        )
    lines = [
        f"live workers: {len(batches['workers'])}; oldest unpublished batch: "
        f"{_age(batches['oldest_unpublished_age_seconds'])}",
        *(
            f"last publish to {feed}: {_when(moment)}"
            for feed, moment in batches["last_publish"].items()
        ),
        *(f"[red]{escape(f'{worker}: {error}')}[/]" for worker, error in batches["errors"].items()),
        *(
            "[red]"
            + escape(
                f"{w['state'].upper()} {w['feed']} {w['topic']}[{w['partition']}] on "
                f"{w['worker']}: {w['error']}"
            )
            + "[/]"
            for w in batches["failing_writers"]
        ),
        *(
            "[red]"
            + escape(
                f"HALTED partition {h['partition']} at offset {h['offset']} on {h['worker']} "
                f"(attempt {h['attempts']}): {h['reason']}"
            )
            + "[/]"
            for h in batches.get("halted_partitions", ())
        ),
    ]
    return Group(title, *tables, open_batches, *lines)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _when(moment: float | None) -> str:
    if moment is None:
        return "never (since these workers started)"
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
    return f"{stamp} ({time.time() - moment:.0f}s ago)"
