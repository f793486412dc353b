"""The pure half of `variance-sync replay`: targets, per-partition plans, the rollback file.

A plan never reaches past what a partition holds: every new offset is clamped to
[log start, high watermark]. A partition without a committed offset is planned from its
log start, because that is where a worker starts it (`auto_offset_reset = earliest`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from streams.errors import UsageError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ToOffset:
    offset: int

    def describe(self) -> str:
        return f"to offset {self.offset}"


@dataclass(frozen=True, slots=True)
class ToEarliest:
    def describe(self) -> str:
        return "to the log start"


@dataclass(frozen=True, slots=True)
class ToLatest:
    def describe(self) -> str:
        return "to the high watermark"


@dataclass(frozen=True, slots=True)
class ShiftBy:
    delta: int

    def describe(self) -> str:
        return f"by {self.delta:+d}"


@dataclass(frozen=True, slots=True)
class ToDatetime:
    at: datetime

    @property
    def timestamp_ms(self) -> int:
        return (self.at - _EPOCH) // timedelta(milliseconds=1)

    def describe(self) -> str:
        return f"to {self.at.isoformat()}"


@dataclass(frozen=True, slots=True)
class ToExported:
    """Back to the offsets of a rollback file; None is "no committed offset" there."""

    source: str
    offsets: Mapping[PartitionKey, int | None]

    def describe(self) -> str:
        return f"to the offsets in {self.source}"


# A datetime needs a search over the log, so the shell resolves it; the rest are pure.
OffsetTarget = ToOffset | ToEarliest | ToLatest | ShiftBy | ToExported
Target = OffsetTarget | ToDatetime


@dataclass(frozen=True, slots=True)
class PartitionState:
    topic: str
    partition: int
    committed: int | None
    log_start: int
    high_watermark: int

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)

    def clamp(self, offset: int) -> int:
        return min(max(offset, self.log_start), self.high_watermark)

    @property
    def position(self) -> int:
        """Where the group's next worker would start reading this partition."""
        return self.log_start if self.committed is None else self.clamp(self.committed)


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    state: PartitionState
    requested: int
    new: int

    @property
    def reread(self) -> int:
        """Events read again; negative when the move skips unread events forward."""
        return self.state.position - self.new

    @property
    def clamped(self) -> bool:
        return self.requested != self.new

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "topic": s.topic,
            "partition": s.partition,
            "committed": s.committed,
            "log_start": s.log_start,
            "high_watermark": s.high_watermark,
            "requested": self.requested,
            "new": self.new,
            "reread": self.reread,
            "clamped": self.clamped,
        }


def requested_offset(target: OffsetTarget, state: PartitionState) -> int:
    match target:
        case ToOffset(offset):
            return offset
        case ToEarliest():
            return state.log_start
        case ToLatest():
            return state.high_watermark
        case ShiftBy(delta):
            return state.position + delta
        case ToExported(offsets=offsets):
            exported = offsets[state.key]
            return state.log_start if exported is None else exported


def selected_partitions(
    target: Target, topic: str, partitions: frozenset[int] | None
) -> set[int] | None:
    """The partitions of `topic` to plan; None means all of them. A rollback file limits
    them to those it saved."""
    if not isinstance(target, ToExported):
        return None if partitions is None else set(partitions)
    saved = {p for t, p in target.offsets if t == topic}
    if not saved:
        raise UsageError(f"{target.source} has no offsets for topic {topic}")
    chosen = saved if partitions is None else saved & partitions
    if not chosen:
        raise UsageError(f"{target.source} has no offsets for those partitions of {topic}")
    return chosen


def plan_partition(state: PartitionState, requested: int) -> PartitionPlan:
    return PartitionPlan(state, requested, state.clamp(requested))


@dataclass(frozen=True, slots=True)
class Plan:
    group: str
    target: Target
    partitions: tuple[PartitionPlan, ...]

    @property
    def reread(self) -> int:
        return sum(max(p.reread, 0) for p in self.partitions)

    @property
    def skipped(self) -> int:
        return sum(max(-p.reread, 0) for p in self.partitions)

    @property
    def moving(self) -> int:
        return sum(1 for p in self.partitions if p.new != p.state.committed)

    def summary(self, *, executed: bool) -> str:
        head = "applied and verified" if executed else "dry run"
        verb = "moved" if executed else "would move"
        line = (
            f"{head}: {self.moving} of {len(self.partitions)} partition(s) of group "
            f"{self.group} {verb} {self.target.describe()}; {self.reread} event(s) to re-read"
        )
        if self.skipped:
            line += f", {self.skipped} unread event(s) skipped and never processed"
        return line if executed else f"{line} (add --execute to apply)"

    def to_json(self, *, executed: bool, members: int) -> dict[str, Any]:
        return {
            "group": self.group,
            "target": self.target.describe(),
            "executed": executed,
            "active_members": members,
            "partitions": [p.to_json() for p in self.partitions],
            "reread": self.reread,
            "skipped": self.skipped,
        }


def natural_number(text: str) -> int:
    """An argparse type for offsets and partition numbers."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def parse_datetime(text: str) -> datetime:
    """An argparse type: ISO-8601 with a UTC offset, since a naive time is ambiguous."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 date-time such as 2024-02-29T12:00:00-06:00"
        ) from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. {text}Z or {text}-06:00"
        )
    return moment


def export_document(group: str, states: Sequence[PartitionState], now: datetime) -> dict[str, Any]:
    return {
        "group": group,
        "exported_at": now.astimezone(UTC).isoformat(),
        "offsets": [
            {"topic": s.topic, "partition": s.partition, "offset": s.committed} for s in states
        ],
    }


def parse_export(text: str, source: str) -> tuple[str, dict[PartitionKey, int | None]]:
    """The group and offsets of a rollback file written by `--export`."""
    try:
        document = json.loads(text)
    except ValueError:
        raise UsageError(f"{source}: not JSON; expected a file written by --export") from None
    entries = document.get("offsets") if isinstance(document, dict) else None
    group = document.get("group") if isinstance(document, dict) else None
    if not isinstance(group, str) or not group or not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: not a replay export (needs 'group' and 'offsets')")
    offsets: dict[PartitionKey, int | None] = {}
    for number, entry in enumerate(entries):
        if not _valid_entry(entry):
            raise UsageError(
                f"{source}: offsets[{number}] needs a topic, a partition >= 0 and an "
                "offset >= 0 or null"
            )
        offsets[(entry["topic"], entry["partition"])] = entry["offset"]
    return group, offsets


def _valid_entry(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    topic, partition, offset = entry.get("topic"), entry.get("partition"), entry.get("offset")

    def natural(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    return (
        isinstance(topic, str)
        and bool(topic)
        and natural(partition)
        and (offset is None or natural(offset))
    )


def plan_table(plan: Plan) -> Table:
    table = Table(title=f"group {plan.group}: replay {plan.target.describe()}")
    table.add_column("topic", overflow="fold")
    for name in ("partition", "current", "new", "re-read"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("note", overflow="fold")
    for p in plan.partitions:
        s = p.state
        current = "none" if s.committed is None else str(s.committed)
        table.add_row(s.topic, str(s.partition), current, str(p.new), str(p.reread), _remark(p))
    return table


def _remark(p: PartitionPlan) -> str:
    notes = []
    if p.clamped:
        notes.append(f"asked {p.requested}, kept in {p.state.log_start}-{p.state.high_watermark}")
    if p.reread < 0:
        notes.append(f"skips {-p.reread} unread")
    if p.new == p.state.committed:
        notes.append("unchanged")
    return "; ".join(notes)
