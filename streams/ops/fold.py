"""Folding the input topics into positions with the worker's own per-record logic, and
comparing the result with a table rebuilt from its changelog.

Each record goes through the worker's own decision (`streams.core.decision`), with plain
dicts for tables. What the worker dead-lettered is skipped: every record the DLQ names,
whatever today's config would decide (after a config fix and a re-drive, the worker
applied the re-driven copy, not the first one), and whatever today's config rejects.
Positions forget the copies they name as the worker's do (`streams.core.positions`),
taking the fold's own progress for the floors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiokafka import TopicPartition

from streams.config import Settings
from streams.core.dead_letter import SourceRecord, decode_headers
from streams.core.decision import Apply, Outcome, Rules, decide
from streams.core.positions import may_have_forgotten, position_key
from streams.core.progress import Progress
from streams.kafka.broker import TopicNames
from streams.kafka.changelog import RebuiltTable, scan
from streams.kafka.offsets import OffsetReader
from streams.ops.dead_letter_state import dead_lettered, read_state
from streams.ops.reconcile_model import ExportedRow
from streams.output import progress

# Set by whichever event touched a position last. The worker interleaves the two input
# topics in an order nobody records, so these may end as either topic's last event left them.
ORDER_SENSITIVE = ("last_event_id", "last_event_at", "netsuite_location_id", "netsuite_item_id")
# The copies a position names, which the worker and the fold forget by different floors.
BOOKKEEPING = "applied_events"


class InputFold:
    def __init__(
        self, settings: Settings, dead_lettered: Set[tuple[str, int, int]] = frozenset()
    ) -> None:
        topics = TopicNames.from_config(settings.kafka)
        self.inventory: dict[str, Any] = {}
        # Position key -> topic -> ORDER_SENSITIVE fields right after that topic's last event.
        self.endings: dict[str, dict[str, dict[str, Any]]] = {}
        self.records = self.applied = self.duplicates = self.skipped = 0
        # Every row the worker exports for the folded events, in input order.
        self.exported: list[ExportedRow] = []
        self._kinds = topics.kinds
        self.rules = Rules.from_settings(settings)
        self._dead_lettered = dead_lettered
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset

    def add(self, record: SourceRecord) -> None:
        """Apply one record; records of a partition must come in offset order."""
        self.records += 1
        floors = self._floors(record)
        self._next[(record.topic, record.partition)] = record.offset + 1
        if (record.topic, record.partition, record.offset) in self._dead_lettered:
            self.skipped += 1
            return
        decision = decide(
            record,
            self._kinds[record.topic],
            progress=Progress(),
            positions=self.inventory,
            floors=floors,
            rules=self.rules,
        )
        if not isinstance(decision, Apply):
            self.skipped += 1  # the worker dead-letters it
            return
        if decision.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
            return
        self.inventory.update(decision.writes)
        self.applied += 1
        self.exported += [
            ExportedRow.of(row, record.topic, record.partition, record.offset)
            for row in decision.routed.rows
        ]
        for change in decision.routed.changes:
            key = position_key(change.facility_id, change.product_id)
            position = self.inventory[key]
            self.endings.setdefault(key, {})[record.topic] = {
                name: position[name] for name in ORDER_SENSITIVE
            }

    def _floors(self, record: SourceRecord) -> dict[str, int]:
        """The fold's own progress: everything before this record is folded."""
        floors = {
            topic: offset
            for (topic, partition), offset in self._next.items()
            if partition == record.partition
        }
        floors[record.topic] = record.offset
        return floors


def to_source_record(record: Any) -> SourceRecord:
    """An aiokafka record as the ingest agent sees it (`streams.worker.ingest.to_record`)."""
    return SourceRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=decode_headers(record.headers),
    )


def applied_through(
    inputs: Iterable[TopicPartition],
    committed: Mapping[TopicPartition, int | None],
    inventory: RebuiltTable,
    progress: RebuiltTable,
) -> dict[TopicPartition, int]:
    """The last input offset per partition known to be applied (-1: none).

    Evidence: the group's committed offset (offsets move only after an event's batch is
    published), the progress floors and dead letters, and the copies positions name.
    Events past all of them are not applied yet, so folding them would report lag as
    differences.
    """
    bounds = dict.fromkeys(inputs, -1)

    def note(tp: TopicPartition, offset: Any) -> None:
        if tp in bounds and isinstance(offset, int):
            bounds[tp] = max(bounds[tp], offset)

    for tp, offset in committed.items():
        if offset is not None:
            note(tp, offset - 1)
    for key, value in progress.values.items():
        topic, _, partition = str(key).rpartition(":")
        if isinstance(value, dict) and partition.isdigit():
            tp = TopicPartition(topic, int(partition))
            state = Progress.from_json(value)
            note(tp, state.floor - 1)
            for offset in state.dead_letters:
                note(tp, offset)
    for key, position in inventory.values.items():
        entries = position.get(BOOKKEEPING) if isinstance(position, dict) else None
        if isinstance(entries, dict):
            for entry in entries.values():
                if isinstance(entry, list) and len(entry) == 3:
                    note(TopicPartition(entry[0], inventory.partition_of[key]), entry[1])
    return bounds


@dataclass(frozen=True, slots=True)
class InputRead:
    topic: str
    kind: str
    partition: int
    high_watermark: int
    folded_end: int  # exclusive: records at or past it were not folded

    @property
    def not_applied(self) -> int:
        return self.high_watermark - self.folded_end


async def fold_inputs(
    reader: OffsetReader, settings: Settings, bounds: Mapping[TopicPartition, int]
) -> tuple[InputFold, list[InputRead]]:
    tps = sorted(bounds)
    starts = await reader.log_starts(tps)
    marks = await reader.high_watermarks(tps)
    ends = {tp: max(starts[tp], min(marks[tp], bounds[tp] + 1)) for tp in tps}
    topics = TopicNames.from_config(settings.kafka)
    dead = (
        dead_lettered(await read_state(reader, topics))
        if topics.dlq in await reader.topics()
        else set()
    )
    fold = InputFold(settings, dead)
    total = sum(ends[tp] - starts[tp] for tp in tps)
    with progress("folding the input topics", total) as advance:
        async for record in scan(reader, {tp: (starts[tp], ends[tp]) for tp in tps}):
            fold.add(to_source_record(record))
            advance(1)
    kinds = topics.kinds
    reads = [
        InputRead(tp.topic, kinds[tp.topic].value, tp.partition, marks[tp], ends[tp]) for tp in tps
    ]
    return fold, reads


class Kind(StrEnum):
    MISSING = "missing"  # the fold has the key, the changelog does not
    EXTRA = "extra"  # only the changelog has the key
    DIFFERS = "differs"  # both have it; `field` names what differs (None: the whole value)


@dataclass(frozen=True, slots=True)
class Difference:
    table: str
    key: str
    kind: Kind
    field: str | None
    changelog: Any
    fold: Any


@dataclass
class Comparison:
    table: str
    compared: int = 0
    equal: int = 0
    differing: int = 0
    missing: int = 0
    extra: int = 0
    differences: list[Difference] = field(default_factory=list)


def compare(
    table: str,
    rebuilt: Mapping[str, Any],
    folded: Mapping[str, Any],
    endings: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    rules: Rules | None = None,
) -> Comparison:
    """Keys only on one side, and per-field differences for keys on both. With `rules`,
    a name a position forgot is a difference only if no floor could have let it go."""
    result = Comparison(table)
    for key in sorted(set(rebuilt) | set(folded)):
        result.compared += 1
        if key not in rebuilt:
            result.missing += 1
            result.differences.append(Difference(table, key, Kind.MISSING, None, None, folded[key]))
        elif key not in folded:
            result.extra += 1
            result.differences.append(Difference(table, key, Kind.EXTRA, None, rebuilt[key], None))
        else:
            found = _differences(
                table, key, rebuilt[key], folded[key], endings=(endings or {}).get(key), rules=rules
            )
            result.differences += found
            result.differing += bool(found)
            result.equal += not found
    return result


def _differences(
    table: str,
    key: str,
    ours: Any,
    theirs: Any,
    *,
    endings: Mapping[str, Mapping[str, Any]] | None,
    rules: Rules | None,
) -> list[Difference]:
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return [] if ours == theirs else [Difference(table, key, Kind.DIFFERS, None, ours, theirs)]
    names = sorted(set(ours) | set(theirs))
    if any(_same(ours, ending, ORDER_SENSITIVE) for ending in (endings or {}).values()):
        names = [name for name in names if name not in ORDER_SENSITIVE]
    return [
        Difference(table, key, Kind.DIFFERS, name, ours.get(name), theirs.get(name))
        for name in names
        if not _agrees(name, ours.get(name), theirs.get(name), rules)
    ]


def _agrees(name: str, ours: Any, theirs: Any, rules: Rules | None) -> bool:
    if name == BOOKKEEPING and isinstance(ours, dict) and isinstance(theirs, dict):
        # The worker prunes by its durable floors, which trail or lead the fold's (it
        # interleaves the topics in its own order): names may be more or fewer, never other.
        return all(
            ours.get(event_id) == entry
            or (
                event_id not in ours
                and rules is not None
                and may_have_forgotten(entry, ours, rules.horizon_ms, rules.positions)
            )
            for event_id, entry in theirs.items()
        )
    return bool(ours == theirs)


def _same(left: Mapping[str, Any], right: Mapping[str, Any], names: Sequence[str]) -> bool:
    return all(left.get(name) == right.get(name) for name in names)
