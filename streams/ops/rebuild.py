"""`variance-sync rebuild-table`: check that the changelogs rebuild the tables exactly, then
(with `--execute`) drop the local table state so that the next worker start rebuilds it
from them. Without `--execute` it only checks, and may run while workers run.

The order matters. Everything is read and compared first: the changelogs to their Fetch
high watermark, and the input topics folded with the worker's own logic (`streams.ops.fold`).
Local state goes only when no worker is running and the guard holds. Where ListOffsets
answers less than the high watermark (Tansu, DESIGN section 9), Faust's recovery would
stop short; workers end such partitions with a single-record batch before every recovery
(`streams.kafka.changelog_ends`), and so does a rebuild before it reads. Should the guard still
trip (a worker wrote meanwhile), the local state is kept.

Exit codes: 0 when the tables match the fold (and, for a rebuild, the guard holds), 1 on
any difference or a tripped guard after ending the partitions, 2 on usage and broker
errors (including workers still running).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from streams.config import KafkaConfig, Settings, WorkerConfig
from streams.errors import UsageError
from streams.kafka.broker import INVENTORY_TABLE, PROGRESS_TABLE, TopicNames, changelog_topic
from streams.kafka.changelog import (
    PartitionRead,
    RebuiltTable,
    drop_local_state,
    held_by_another_process,
    local_state,
    read_changelogs,
)
from streams.kafka.changelog_ends import seal_changelog_ends
from streams.kafka.offsets import OffsetReader
from streams.ops.common import add_connection_options, add_execute_option, settings_from
from streams.ops.fold import (
    Comparison,
    Difference,
    InputFold,
    InputRead,
    applied_through,
    compare,
    fold_inputs,
)
from streams.output import print_json

SHOWN_DIFFERENCES = 50
CHANGELOG_COLUMNS = (
    "table",
    "part.",
    "log\nstart",
    "records\nread",
    "high\nwatermark\n(Fetch)",
    "end\n(ListOffsets)",
    "guard",
)
INPUT_COLUMNS = ("events", "part.", "high\nwatermark", "folded\nto", "not yet\napplied")
DIFFERENCE_COLUMNS = ("table", "key", "kind", "field", "changelog", "fold")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "rebuild-table",
        help="verify the table changelogs against the input topics; with --execute, then "
        "drop local table state",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    add_connection_options(parser)
    add_execute_option(
        parser, "drop the local table state after the check (refused while workers run)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON, with every difference")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.worker.store != "rocksdb" and args.execute:
        raise UsageError(
            f"worker.store is {settings.worker.store!r}: there is no local table state to "
            "rebuild (a worker recovers its tables from the changelogs at every start); "
            "without --execute it checks the changelogs"
        )
    report = asyncio.run(rebuild(settings, verify_only=not args.execute))
    if args.json:
        print_json(report.to_json())
    else:
        render(report)
    return report.exit_code


@dataclass
class Report:
    group: str
    verify_only: bool
    store: str
    changelogs: list[RebuiltTable]
    inputs: list[InputRead]
    fold: InputFold
    comparisons: list[Comparison]
    removed: list[Path] = field(default_factory=list)
    kept_because: str | None = None

    @property
    def tripped(self) -> list[PartitionRead]:
        return [read for table in self.changelogs for read in table.tripped]

    @property
    def differences(self) -> list[Difference]:
        return [d for comparison in self.comparisons for d in comparison.differences]

    @property
    def exit_code(self) -> int:
        # While workers run, a short end is normal: they end it before any recovery.
        return 1 if self.differences or (self.tripped and not self.verify_only) else 0

    def to_json(self) -> dict[str, Any]:
        fold = self.fold
        return {
            "group": self.group,
            "verify_only": self.verify_only,
            "store": self.store,
            "ok": self.exit_code == 0,
            "guard_tripped": bool(self.tripped),
            "changelogs": [
                {**asdict(read), "guard_tripped": read.guard_tripped, "at_risk": read.at_risk}
                for table in self.changelogs
                for read in table.partitions
            ],
            "inputs": [{**asdict(read), "not_applied": read.not_applied} for read in self.inputs],
            "fold": {
                "records": fold.records,
                "applied": fold.applied,
                "duplicates": fold.duplicates,
                "skipped": fold.skipped,
            },
            "tables": {c.table: _counts(c) for c in self.comparisons},
            "differences": [asdict(d) for d in self.differences],
            "local_state": {
                "removed": [str(path) for path in self.removed],
                "kept_because": self.kept_because,
            },
        }


def _counts(c: Comparison) -> dict[str, int]:
    return {
        "compared": c.compared,
        "equal": c.equal,
        "differing": c.differing,
        "missing": c.missing,
        "extra": c.extra,
    }


async def rebuild(settings: Settings, *, verify_only: bool) -> Report:
    kafka, worker = settings.kafka, settings.worker
    group, inputs = kafka.group_id, TopicNames.from_config(kafka).inputs
    drops_state = not verify_only and worker.store == "rocksdb"
    if drops_state:
        refuse_if_held(worker)
    async with OffsetReader(kafka) as reader:
        if drops_state:
            await refuse_if_group_active(reader, kafka)
        changelogs = {
            table: changelog_topic(group, table) for table in (INVENTORY_TABLE, PROGRESS_TABLE)
        }
        missing = sorted((set(inputs) | set(changelogs.values())) - set(await reader.topics()))
        if missing:
            raise UsageError(
                f"no topic {', '.join(missing)} on {kafka.bootstrap}; "
                f"has a worker of group {group} run against this broker?"
            )
        if drops_state and not (await reader.traits()).exact_list_offsets:
            await seal_changelog_ends(kafka, list(changelogs.values()))
        tps = await reader.partitions_of(inputs)
        # Committed offsets first: every event below them is then in the changelogs read next.
        committed = await reader.committed(group, tps)
        inventory, progress = await read_changelogs(reader, changelogs)
        fold, reads = await fold_inputs(
            reader, settings, applied_through(tps, committed, inventory, progress)
        )
        report = Report(
            group,
            verify_only,
            worker.store,
            [inventory, progress],
            reads,
            fold,
            # Progress is the workers' own bookkeeping, which no fold of the inputs gives.
            [compare(INVENTORY_TABLE, inventory.values, fold.inventory, fold.endings, fold.rules)],
        )
        if not drops_state:
            return report
        if report.tripped:
            report.kept_because = "a worker without it would recover only up to the ListOffsets end"
            return report
        # A worker may have started while we read.
        refuse_if_held(worker)
        await refuse_if_group_active(reader, kafka)
        report.removed = drop_local_state(worker)
    return report


def refuse_if_held(worker: WorkerConfig) -> None:
    held = [path for path in local_state(worker) if held_by_another_process(path)]
    if held:
        raise UsageError(
            f"a running worker holds {held[0]} open; stop every worker that uses "
            f"{worker.data_dir} first, or leave out --execute to only verify"
        )


async def refuse_if_group_active(reader: OffsetReader, kafka: KafkaConfig) -> None:
    # Where DescribeGroups still lists a member after it has left (Tansu, until another
    # member joins), only the RocksDB locks (`refuse_if_held`) can tell a worker is running.
    if (await reader.traits()).stale_group_members:
        return
    state = await reader.group_state(kafka.group_id)
    if state.active:
        raise UsageError(
            f"group {kafka.group_id} has {len(state.members)} active member(s); a running "
            "worker owns its local table state: stop every worker first, or leave out "
            "--execute to only verify"
        )


def render(report: Report) -> None:
    console = Console(markup=False, highlight=False)
    mode = "verify only" if report.verify_only else "rebuild"
    print(f"rebuild-table: group {report.group}, store {report.store} ({mode})")
    changelog_rows = [
        (
            table.name,
            r.partition,
            r.log_start,
            r.records,
            r.high_watermark,
            r.list_offsets_end,
            "TRIPPED" if r.guard_tripped else "ok",
        )
        for table in report.changelogs
        for r in table.partitions
    ]
    topics = ", ".join(table.partitions[0].topic for table in report.changelogs)
    console.print(_table(f"Changelogs ({topics})", CHANGELOG_COLUMNS, changelog_rows))
    input_rows = [
        (r.kind, r.partition, r.high_watermark, r.folded_end, r.not_applied) for r in report.inputs
    ]
    topics = ", ".join(sorted({read.topic for read in report.inputs}))
    console.print(_table(f"Input topics ({topics})", INPUT_COLUMNS, input_rows))
    fold = report.fold
    print(
        f"fold: {fold.records} records: {fold.applied} applied, {fold.duplicates} producer "
        f"duplicates, {fold.skipped} skipped (dead-lettered by the worker)"
    )
    for c in report.comparisons:
        print(
            f"{c.table}: {c.compared} compared: {c.equal} equal, {c.differing} differing, "
            f"{c.missing} missing from the changelog, {c.extra} only in the changelog"
        )
    for read in report.tripped:
        print(
            f"guard: {read.topic}[{read.partition}]: ListOffsets end {read.list_offsets_end} "
            f"but Fetch high watermark {read.high_watermark}; Faust's changelog recovery "
            f"would stop at offset {read.list_offsets_end - 1} and lose up to {read.at_risk} "
            "record(s) (Tansu's multi-record batch bug); read to the high watermark here"
            + (
                "; workers end it with a single-record batch before recovering"
                if report.verify_only
                else ""
            )
        )
    differences = report.differences
    if differences:
        shown = differences[:SHOWN_DIFFERENCES]
        title = f"Differences ({len(shown)} of {len(differences)}; --json lists all)"
        rows = [
            (d.table, d.key, d.kind.value, d.field or "", repr(d.changelog), repr(d.fold))
            for d in shown
        ]
        console.print(_table(title, DIFFERENCE_COLUMNS, rows))
    _render_local_state(report)
    verdict = f"{len(differences)} difference(s)" if differences else "equal"
    tripped = report.tripped and not report.verify_only
    print(f"result: {verdict}{'; guard TRIPPED' if tripped else ''}")


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    # Folded, not cut: a topic name or a key is useless with an ellipsis in it.
    table = Table(*(Column(name, overflow="fold") for name in columns), title=title)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _render_local_state(report: Report) -> None:
    if report.verify_only:
        print("local state: untouched (a dry run; --execute drops it)")
    elif report.kept_because is not None:
        print(f"local state: KEPT, {report.kept_because}")
    elif not report.removed:
        print("local state: none found; the next worker start recovers from the changelogs")
    else:
        for path in report.removed:
            print(f"removed {path}")
        print("local state: removed; the next worker start recovers from the changelogs")
