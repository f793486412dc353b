"""`variance-sync replay`: move a consumer group's committed offsets.

A dry run by default: it prints, per partition, the committed offset, the new one and how
many events the group will read again. `--execute` commits the plan without joining the
group and reads it back. Re-reading cannot post twice to NetSuite: workers skip events
their positions already hold, and never publish again a batch that the ledger, or the
file's presence in csv/, archive/ or failed/, shows as published
(docs/publish-protocol.md, "Replays").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition
from rich.console import Console

from streams.cli_values import resolve_topic
from streams.config import KafkaConfig, TopicsConfig
from streams.errors import UsageError
from streams.kafka.broker import BrokerError
from streams.kafka.offsets import OffsetReader, tp_label
from streams.ops.common import add_connection_options, settings_from
from streams.ops.replay_plan import (
    PartitionPlan,
    PartitionState,
    Plan,
    ShiftBy,
    Target,
    ToDatetime,
    ToEarliest,
    ToExported,
    ToLatest,
    ToOffset,
    export_document,
    natural_number,
    parse_datetime,
    parse_export,
    plan_partition,
    plan_table,
    requested_offset,
    selected_partitions,
)
from streams.output import print_json, progress

REFUSES = "--execute refuses until its workers stop"
# Longer than a worker's heartbeat interval (1 s on Tansu, Faust's default is 3 s); a
# removed live aiokafka member was listed again after about 1 s in both cases.
REJOIN_GRACE = 3.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="move a consumer group's offsets (a dry run unless --execute)",
        description="Move a consumer group's committed offsets. A dry run unless --execute.",
    )
    add_connection_options(parser)
    parser.add_argument("--group", help="consumer group (default with --from-file: the file's)")
    parser.add_argument(
        "--topic",
        action="append",
        help="topic to move: a short name (count-approved, variance-logged) or a full one; "
        "repeatable (default with --from-file: all)",
    )
    parser.add_argument(
        "--partition",
        action="append",
        type=natural_number,
        metavar="P",
        help="only this partition; repeatable",
    )
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument(
        "--to-datetime",
        type=parse_datetime,
        metavar="ISO",
        help="first record at or after this time, e.g. 2024-02-29T12:00:00-06:00",
    )
    targets.add_argument(
        "--to-offset", type=natural_number, metavar="N", help="this offset (kept inside the log)"
    )
    targets.add_argument("--to-earliest", action="store_true", help="the log start")
    targets.add_argument(
        "--to-latest", action="store_true", help="the high watermark (skips unread events)"
    )
    targets.add_argument(
        "--shift-by", type=int, metavar="N", help="N events forward, or back when negative"
    )
    targets.add_argument(
        "--from-file", type=Path, metavar="FILE", help="back to the offsets saved by --export"
    )
    parser.add_argument("--execute", action="store_true", help="apply the plan (default: show it)")
    parser.add_argument(
        "--export", type=Path, metavar="FILE", help="first save the current offsets to a new FILE"
    )
    parser.add_argument(
        "--remove-stale-members",
        action="store_true",
        help="Tansu only: remove members left behind by stopped workers before applying",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Request:
    group: str
    topics: tuple[str, ...]
    partitions: frozenset[int] | None
    target: Target
    execute: bool
    export: Path | None
    remove_stale: bool
    json: bool


def request_from(args: argparse.Namespace, configured: TopicsConfig) -> Request:
    """Everything that can be checked before reaching the broker; `--topic` short names
    map through the configured topics."""
    if args.remove_stale_members and not args.execute:
        raise UsageError("--remove-stale-members only applies with --execute")
    if args.export is not None and args.export.exists():
        raise UsageError(f"{args.export} already exists; --export never overwrites a file")
    target, file_group = _target(args)
    group = args.group or file_group
    topics = tuple(dict.fromkeys(resolve_topic(topic, configured) for topic in args.topic or ()))
    if isinstance(target, ToExported) and not topics:
        topics = tuple(dict.fromkeys(topic for topic, _ in target.offsets))
    if not group:
        raise UsageError("--group is required (or --from-file, which names the group)")
    if not topics:
        raise UsageError("--topic is required (or --from-file, which names the topics)")
    partitions = frozenset(args.partition) if args.partition else None
    return Request(
        group,
        topics,
        partitions,
        target,
        args.execute,
        args.export,
        args.remove_stale_members,
        args.json,
    )


def _target(args: argparse.Namespace) -> tuple[Target, str | None]:
    if args.from_file is not None:
        path: Path = args.from_file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text; replay --export writes JSON") from None
        group, offsets = parse_export(text, str(path))
        return ToExported(str(path), offsets), group
    if args.to_datetime is not None:
        return ToDatetime(args.to_datetime), None
    if args.to_offset is not None:
        return ToOffset(args.to_offset), None
    if args.shift_by is not None:
        return ShiftBy(args.shift_by), None
    return (ToLatest() if args.to_latest else ToEarliest()), None


def run(args: argparse.Namespace) -> int:
    kafka = settings_from(args).kafka
    return asyncio.run(replay(request_from(args, kafka.topics), kafka))


async def replay(request: Request, kafka: KafkaConfig) -> int:
    group = request.group
    async with OffsetReader(kafka) as reader:
        tps = await _partitions(reader, request, kafka)
        if not await reader.group_exists(group, tps):
            topics = ", ".join(request.topics)
            raise UsageError(
                f"unknown consumer group {group!r} (no members, no offsets on {topics})"
            )
        members = (await reader.group_state(group)).members
        stale = bool(members or request.remove_stale) and (
            (await reader.traits()).stale_group_members
        )
        if request.remove_stale and not stale:
            raise UsageError("--remove-stale-members is for Tansu; Kafka expires stale members")
        if members and request.execute and not request.remove_stale:
            raise UsageError(_refusal(group, len(members), stale))
        states = await _states(reader, group, tps)
        plans = []
        with progress("planning partitions", len(states)) as advance:
            for state in states:
                plans.append(await _plan(reader, request.target, state))
                advance(1)
        plan = Plan(group, request.target, tuple(plans))
        if request.export is not None:
            _write_export(request.export, export_document(group, states, datetime.now(UTC)))
        if request.execute:
            if members:
                grace = max(REJOIN_GRACE, 2 * (kafka.heartbeat_interval_seconds or 0))
                await _remove_members(reader, group, members, grace)
            elif joined := (await reader.group_state(group)).members:
                # A worker that started while we planned: Tansu would take our commit,
                # and the worker's next one would overwrite it.
                raise UsageError(_refusal(group, len(joined), stale))
            await _apply(reader, plan)
        elif members:
            _note(f"warning: group {group} has {len(members)} active member(s); {REFUSES}")
    _report(plan, request, len(members))
    return 0


async def _partitions(
    reader: OffsetReader, request: Request, kafka: KafkaConfig
) -> list[TopicPartition]:
    # Checked against the topic listing first: describing an unknown topic creates it on
    # Tansu, as producing to one does.
    existing = set(await reader.topics())
    chosen: list[TopicPartition] = []
    for topic in request.topics:
        if topic not in existing:
            inputs = f"{kafka.topics.count_approved} and {kafka.topics.variance_logged}"
            raise UsageError(f"unknown topic {topic!r} (the input topics are {inputs})")
        numbers = [tp.partition for tp in await reader.partitions(topic)]
        wanted = selected_partitions(request.target, topic, request.partitions)
        for number in sorted(wanted or ()):
            if number not in numbers:
                raise UsageError(
                    f"topic {topic} has {len(numbers)} partition(s) (0-{len(numbers) - 1}); "
                    f"there is no partition {number}"
                )
        chosen += [TopicPartition(topic, n) for n in numbers if wanted is None or n in wanted]
    return chosen


def _refusal(group: str, count: int, stale_members: bool) -> str:
    message = f"group {group} has {count} active member(s); stop its workers before replaying"
    if stale_members:
        message += (
            " (Tansu keeps members of stopped workers listed: once every worker is stopped, "
            "add --remove-stale-members)"
        )
    return message


async def _states(
    reader: OffsetReader, group: str, tps: Sequence[TopicPartition]
) -> list[PartitionState]:
    starts = await reader.log_starts(tps)
    marks = await reader.high_watermarks(tps)
    committed = await reader.committed(group, tps)
    return [
        PartitionState(tp.topic, tp.partition, committed[tp], starts[tp], marks[tp]) for tp in tps
    ]


async def _plan(reader: OffsetReader, target: Target, state: PartitionState) -> PartitionPlan:
    if isinstance(target, ToDatetime):
        tp = TopicPartition(state.topic, state.partition)
        found = await reader.offset_for_time(
            tp, target.timestamp_ms, state.log_start, state.high_watermark
        )
        return plan_partition(state, found)
    return plan_partition(state, requested_offset(target, state))


def _write_export(path: Path, document: dict[str, object]) -> None:
    try:
        # Exclusive creation: a rollback file from an earlier replay is never replaced.
        with path.open("x", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the export ({exc.strerror})") from None
    _note(f"saved the current offsets to {path}; undo with --from-file {path}")


async def _remove_members(
    reader: OffsetReader, group: str, members: Sequence[str], grace: float
) -> None:
    await reader.remove_members(group, members)
    # A live worker removed by mistake notices at its next heartbeat and joins again; the
    # broker then refuses our commit or the worker overwrites it, so look for it first,
    # for longer than the configured heartbeat interval.
    await asyncio.sleep(grace)
    if (await reader.group_state(group)).members:
        raise UsageError(
            f"group {group} has members again after removing {len(members)}: a worker is "
            "running; stop it before replaying"
        )
    _note(f"removed {len(members)} stale member(s) from group {group}")


async def _apply(reader: OffsetReader, plan: Plan) -> None:
    wanted = {TopicPartition(p.state.topic, p.state.partition): p.new for p in plan.partitions}
    await reader.commit(plan.group, wanted)
    after = await reader.committed(plan.group, list(wanted))
    wrong = [
        f"{tp_label(tp)} is at {after[tp]}, not {new}"
        for tp, new in wanted.items()
        if after[tp] != new
    ]
    if wrong:
        raise BrokerError(f"group {plan.group} did not keep the new offsets: {'; '.join(wrong)}")


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _report(plan: Plan, request: Request, members: int) -> None:
    if request.json:
        print_json(plan.to_json(executed=request.execute, members=members))
        return
    console = Console()
    console.print(plan_table(plan))
    console.print(plan.summary(executed=request.execute), highlight=False, soft_wrap=True)
