"""The decision for one consumed record: what should happen to it, and nothing done.

Sans-I/O, in the manner of h11's protocol state machine: `decide` is a plain function of
the record, its partition's progress, the positions it touches and the config. It returns
a value (skip it, dead-letter it with a reason, or write these positions and batch these
rows); the worker (`streams.worker.ingest`) carries that out and owns every await and
every error of doing so. An error while deciding is a decision (the event is dead-lettered
as `internal`); an error while doing never is (docs/event-protocol.md).

Nothing here reads a clock: "too far in the future" is measured against the record's own
Kafka timestamp, so every replay of the same records, at any time, decides the same.

Per record, in order:
1. below its partition's progress floor: fully processed before, so nothing happens
   (`streams.core.progress`);
2. dead-lettered before (the progress names its dead letter): nothing happens;
3. decode, validate and route; a failure is a dead letter, at most once per source event;
4. the positions it touches, each of which names the copies applied to it
   (`streams.core.positions`): a second delivery of the same copy changes nothing,
   another copy of the same event (a producer's duplicate) is ignored whole;
5. its rows, for the partition's batches (`streams.core.pending`).
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, assert_never

from schemas.codec import decode_event
from schemas.exceptions import DecodeError, SchemaError
from schemas.models import CountApproved, EventKind, ValidationLimits, VarianceLogged
from sinks.feeds import AnyFeed
from sinks.rows import PendingRow
from streams.config import NetSuiteConfig, PermissionsConfig, Settings
from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.core.permissions import permission_problem, role_label
from streams.core.positions import (
    KEEP_ALL,
    Applied,
    Position,
    PositionLimits,
    Pruning,
    apply_change,
    position_key,
)
from streams.core.progress import Progress
from streams.core.routing import Routed, UnroutableEvent, route_count, route_variance
from streams.errors import StreamsError

Event = CountApproved | VarianceLogged


class Positions(Protocol):
    """Stored positions by key: a dict, or the worker's table."""

    def get(self, key: str, /) -> Any: ...


class Outcome(StrEnum):
    """What a record came to; the worker counts each (`variance_sync_events_total`)."""

    PROCESSED_BEFORE = "processed-before"  # below the partition's floor
    DEAD_LETTERED_BEFORE = "dead-lettered-before"  # its dead letter is written
    DEAD_LETTERED = "dead-lettered"
    APPLIED = "applied"
    REDELIVERED = "redelivered"  # every position it touches names this copy already
    DUPLICATE = "duplicate"  # another copy of the same event id was applied


@dataclass(frozen=True, slots=True)
class Rules:
    """The config, as decisions read it."""

    netsuite: NetSuiteConfig
    limits: ValidationLimits
    max_event_bytes: int
    permissions: PermissionsConfig | None
    horizon_ms: int
    positions: PositionLimits = field(default_factory=PositionLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        validation = settings.validation
        return cls(
            netsuite=settings.netsuite,
            limits=ValidationLimits(validation.max_abs_quantity, validation.max_future),
            max_event_bytes=validation.max_event_bytes,
            permissions=settings.permissions,
            horizon_ms=round(settings.dedupe.horizon_days * 86_400_000),
            positions=PositionLimits(
                analytics_days=settings.positions.analytics_retention_days,
                max_entries=settings.positions.max_applied_events,
            ),
        )


@dataclass(frozen=True, slots=True)
class Skip:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Reject:
    """Dead-letter the record. `pending_from`: an earlier attempt marked it pending, so the
    DLQ holds nothing of it below that offset, and may hold it at or after."""

    letter: DeadLetter
    role: str | None = None  # for a permission refusal: the role refused
    pending_from: int | None = None
    detail: str | None = None  # the traceback of an internal error, for the log

    outcome = Outcome.DEAD_LETTERED


@dataclass(frozen=True, slots=True)
class Apply:
    """Write these positions and batch these rows (none for a producer's duplicate)."""

    writes: tuple[tuple[str, dict[str, Any]], ...]
    rows: Mapping[AnyFeed, tuple[PendingRow, ...]]
    outcome: Outcome
    routed: Routed
    pruned: bool = False  # a write forgot an applied event (`streams.core.positions`)


Decision = Skip | Reject | Apply


class Rejected(StreamsError):
    def __init__(self, error_class: ErrorClass, reason: str, role: str | None = None) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
        self.role = role


@dataclass(frozen=True, slots=True)
class Accepted:
    event: Event
    schema_version: str
    routed: Routed


def decide(
    record: SourceRecord,
    kind: EventKind,
    *,
    progress: Progress,
    positions: Positions,
    floors: Mapping[str, int],
    rules: Rules,
) -> Decision:
    """What to do with `record`. `positions` maps position keys to their stored JSON;
    `floors` (topic -> durable floor of this partition number) bound what positions may
    forget."""
    if progress.processed(record.offset):
        return Skip(Outcome.PROCESSED_BEFORE)
    mark = progress.dead_letters.get(record.offset)
    if mark is not None and mark.sent:
        return Skip(Outcome.DEAD_LETTERED_BEFORE)
    pending_from = mark.pending_from if mark is not None else None
    try:
        accepted = accept(record, kind, rules)
    except Exception as exc:
        return _refused(record, exc, pending_from)
    # Outside the guards: a store that fails to read, or a stored position that fails to
    # parse, is no fault of the event's. It raises, and the worker halts the partition
    # until the store answers; dead-lettering would move past the event for good.
    keys, current = read_positions(accepted, positions)
    try:
        pruning = prune_by(floors, record, accepted, rules)
        return _apply_to(record, accepted, keys, current, pruning)
    except Exception as exc:
        return _refused(record, exc, pending_from)


def _refused(record: SourceRecord, exc: Exception, pending_from: int | None) -> Reject:
    if isinstance(exc, Rejected):
        letter = DeadLetter(record, exc.error_class, exc.reason)
        return Reject(letter, exc.role, pending_from)
    # A bug must neither stop the partition nor lose the event: keep it for re-drive.
    letter = DeadLetter(record, ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}")
    return Reject(letter, None, pending_from, detail="".join(traceback.format_exception(exc)))


def accept(record: SourceRecord, kind: EventKind, rules: Rules) -> Accepted:
    """Decode, validate and route, or raise `Rejected` with the DLQ reason."""
    if len(record.value) > rules.max_event_bytes:
        raise Rejected(
            ErrorClass.INVALID,
            f"event is {len(record.value)} bytes; at most {rules.max_event_bytes} are accepted "
            "(validation.max_event_bytes)",
        )
    try:
        event, version = decode_event(
            record.value, kind, record.content_type, _limits(record, rules), reference_time(record)
        )
    except SchemaError as exc:
        error_class = ErrorClass.DECODE if isinstance(exc, DecodeError) else ErrorClass.INVALID
        raise Rejected(error_class, str(exc)) from exc
    if record.key != event.facility_id.encode():
        shown = record.key.decode("utf-8", "replace") if record.key is not None else "null"
        raise Rejected(
            ErrorClass.INVALID,
            f"message key {shown!r} is not the facility_id {event.facility_id!r}; "
            "events must be keyed by facility so that a facility stays on one partition",
        )
    if isinstance(event, VarianceLogged) and rules.permissions is not None:
        problem = permission_problem(event, rules.permissions)
        if problem is not None:
            raise Rejected(ErrorClass.PERMISSION, problem, role_label(event))
    try:
        routed = _route(event, rules.netsuite)
    except UnroutableEvent as exc:
        raise Rejected(ErrorClass.UNROUTABLE, str(exc)) from exc
    return Accepted(event, version, routed)


def reference_time(record: SourceRecord) -> datetime | None:
    """What "now" means for `record`: its Kafka timestamp (CreateTime, or LogAppendTime on
    topics that stamp on arrival). None when it has no usable one (a client older than
    Kafka 0.10 sends -1): then the future bound is not checked at all, rather than against
    whatever time the worker happens to run at."""
    stamp = _usable_ms(record)
    return None if stamp is None else datetime.fromtimestamp(stamp / 1000, tz=UTC)


# The last millisecond of year 9999: a later timestamp names no date.
_LAST_MS = 253_402_300_799_999


def _usable_ms(record: SourceRecord) -> int | None:
    """The record's timestamp when it names a date (after the epoch, before year 10000)."""
    stamp = record.timestamp_ms
    return stamp if stamp is not None and 0 < stamp <= _LAST_MS else None


def _limits(record: SourceRecord, rules: Rules) -> ValidationLimits:
    if reference_time(record) is not None:
        return rules.limits
    return ValidationLimits(rules.limits.max_abs_quantity, max_future=None)


def _route(event: Event, netsuite: NetSuiteConfig) -> Routed:
    match event:
        case CountApproved():
            return route_count(event, netsuite)
        case VarianceLogged():
            return route_variance(event, netsuite)
        case _:
            assert_never(event)


# Where a record has no usable time: the epoch, the same on every rebuild of its batch.
_NO_RECORD_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def record_time_ms(record: SourceRecord, event: Event) -> int:
    """The record's timestamp, which the dedupe horizon is measured in (else the event's)."""
    stamp = _usable_ms(record)
    return stamp if stamp is not None else round(event.occurred_at.timestamp() * 1000)


def prune_by(
    floors: Mapping[str, int], record: SourceRecord, accepted: Accepted, rules: Rules
) -> Pruning:
    if rules.horizon_ms <= 0:
        return Pruning(floors, before_ms=0, limits=rules.positions)
    before = record_time_ms(record, accepted.event) - rules.horizon_ms
    return Pruning(floors, before_ms=before, limits=rules.positions)


def apply(
    record: SourceRecord,
    kind: EventKind,
    accepted: Accepted,
    positions: Positions,
    pruning: Pruning = KEEP_ALL,
) -> Apply:
    """The position writes and rows of an accepted event. Also the fold's step
    (`streams.ops.fold`), with the fold's own floors."""
    keys, current = read_positions(accepted, positions)
    return _apply_to(record, accepted, keys, current, pruning)


def read_positions(
    accepted: Accepted, positions: Positions
) -> tuple[list[str], list[Position | None]]:
    """The keys of the positions an accepted event changes, and what is stored at each."""
    keys = [position_key(c.facility_id, c.product_id) for c in accepted.routed.changes]
    return keys, [_position(positions.get(key)) for key in keys]


def _apply_to(
    record: SourceRecord,
    accepted: Accepted,
    keys: Sequence[str],
    current: Sequence[Position | None],
    pruning: Pruning,
) -> Apply:
    event = accepted.event
    copy = (record.topic, record.offset)
    applied_copies = [p.applied_copy(event.event_id) if p else None for p in current]
    if any(c is not None and c != copy for c in applied_copies):
        return Apply((), {}, Outcome.DUPLICATE, accepted.routed)
    applied = Applied(
        event.event_id,
        event.occurred_at,
        record.topic,
        record.offset,
        record_time_ms(record, event),
    )
    writes = []
    pruned = False
    for key, change, position, applied_copy in zip(
        keys, accepted.routed.changes, current, applied_copies, strict=True
    ):
        if applied_copy is None:
            written = apply_change(position, change, applied, pruning)
            named = len(position.applied_events) if position is not None else 0
            pruned = pruned or len(written.applied_events) <= named
            writes.append((key, written.to_json()))
    outcome = Outcome.APPLIED if writes or not keys else Outcome.REDELIVERED
    return Apply(tuple(writes), _rows(record, accepted), outcome, accepted.routed, pruned)


def _position(stored: Any) -> Position | None:
    return Position.from_json(stored) if stored is not None else None


def _rows(record: SourceRecord, accepted: Accepted) -> dict[AnyFeed, tuple[PendingRow, ...]]:
    # Rows come from the event alone, even for a re-delivery: whether they are already
    # published is the ledger's call, not the table's.
    record_at = reference_time(record) or _NO_RECORD_TIME
    rows: dict[AnyFeed, list[PendingRow]] = defaultdict(list)
    for export in accepted.routed.exports:
        pending = PendingRow(record.offset, export.row, record_at, accepted.schema_version)
        rows[export.feed].append(pending)
    return {feed: tuple(found) for feed, found in rows.items()}
