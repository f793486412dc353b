"""What happens to one consumed record: decode, validate, route, dedupe, apply, batch.

Free of Faust types so that it runs in unit tests with dicts for tables; the agent in
`streams.worker.agents` adapts Faust events to `SourceRecord` and calls `handle`.

Per record, in order:
1. below its partition's progress floor: fully processed before, so nothing happens
   (`streams.core.progress`);
2. decode, validate and route; a failure is dead-lettered at most once per source event;
3. apply to the positions it touches, each of which names the copies applied to it
   (`streams.core.positions`): a second delivery of the same copy changes nothing, another
   copy of the same event (a producer's duplicate) is ignored whole;
4. hand its rows to the partition's batches (`streams.core.pending`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.codec import decode_event
from schemas.exceptions import DecodeError, SchemaError
from schemas.models import CountApproved, EventKind, ValidationLimits, VarianceLogged
from sinks.feeds import Feed
from sinks.rows import PendingRow
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.config import Settings
from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.core.pending import Ackable, SourceRegistry, SourceState
from streams.core.permissions import permission_problem, role_label
from streams.core.positions import KEEP_ALL, Applied, Position, Pruning, apply_change, position_key
from streams.core.progress import DeadLetterMark, Progress
from streams.core.routing import Routed, UnroutableEvent, route_count, route_variance

log = logging.getLogger(__name__)


class DeadLetterSink(Protocol):
    """The DLQ: `streams.worker.dead_letter_writer.KafkaDeadLetters` in a worker."""

    def known_end(self) -> int:
        """An offset that no dead letter this process knows of is at or past."""
        ...

    async def send(self, letter: DeadLetter) -> int:
        """Send and wait for the acknowledgement; return the DLQ offset."""
        ...

    async def find(self, record: SourceRecord, from_offset: int) -> int | None:
        """The DLQ offset of an earlier dead letter of `record` at or after `from_offset`."""
        ...


async def _no_seek(source: SourcePartition, offset: int) -> None:
    """Without a consumer (the fold, unit tests) records come in the order given."""


async def _nothing_to_flush() -> None:
    """Without a changelog (the fold, unit tests) every table write is at once durable."""


def record_time_ms(record: SourceRecord, event: CountApproved | VarianceLogged) -> int:
    """The record's timestamp, which the dedupe horizon is measured in (else the event's)."""
    if record.timestamp_ms is not None:
        return record.timestamp_ms
    return round(event.occurred_at.timestamp() * 1000)


class Rejected(Exception):
    def __init__(self, error_class: ErrorClass, reason: str, role: str | None = None) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
        self.role = role  # for a permission refusal: the role that was refused


@dataclass(frozen=True, slots=True)
class Accepted:
    event: CountApproved | VarianceLogged
    schema_version: str
    routed: Routed


@dataclass
class Clocks:
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic


class EventPipeline:
    def __init__(
        self,
        settings: Settings,
        kinds: dict[str, EventKind],
        inventory: MutableMapping[str, Any],
        sources: SourceRegistry,
        *,
        dead_letters: DeadLetterSink,
        durable: Callable[[], Awaitable[None]] = _nothing_to_flush,
        assigned: Callable[[SourcePartition], bool] = lambda _: False,
        seek: Callable[[SourcePartition, int], Awaitable[None]] = _no_seek,
        clocks: Clocks | None = None,
    ) -> None:
        self._settings = settings
        self._kinds = kinds
        self._inventory = inventory
        self._sources = sources
        self._dead_letters = dead_letters
        self._durable = durable
        self._assigned = assigned
        self._seek = seek
        self._clocks = clocks or Clocks()
        self._horizon_ms = round(settings.dedupe.horizon_days * 86_400_000)
        self._limits = ValidationLimits(
            max_abs_quantity=settings.validation.max_abs_quantity,
            max_future=settings.validation.max_future,
        )

    async def handle(self, record: SourceRecord, ackable: Ackable) -> None:
        source = SourcePartition(record.topic, record.partition)
        state = self._sources.get(source)
        if state is None:
            if not self._assigned(source):
                # Revoked while in flight: the new owner consumes it from the committed offset.
                return
            # Assigned, and delivered before the assignment callback ran: take it. Dropping
            # it would let later events be acked past it, and Faust commit past it.
            state = self._sources.adopt(source)
        if record.offset <= state.consumed_through:
            # Delivered again: the consumer went back, as Faust does after every rebalance,
            # or one stale message came through after later ones. Take the events again
            # from here (rows the stream skipped before a seek would be lost otherwise),
            # and make sure the consumer really goes on from here: after a stale message
            # it would go on after the last one, and the events in between, forgotten by
            # the rewind, would never come back.
            state.rewind(record.offset)
            await self._seek(source, record.offset + 1)
            if not self._owns(state):
                return
        progress = self._sources.progress_of(state)
        kind = self._kinds[record.topic]
        rows: dict[Feed, list[PendingRow]] = {}
        if progress.processed(record.offset):
            metrics.events(kind.value, "processed-before").inc()
        else:
            try:
                accepted = self.accept(record, kind)
            except Rejected as rejected:
                await self._dead_letter(record, rejected, state, progress)
            except Exception as exc:
                # A bug must not stop the stream or lose the event: keep it for re-drive.
                log.exception(
                    "unexpected error on %s[%d]@%d", record.topic, record.partition, record.offset
                )
                internal = Rejected(ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}")
                await self._dead_letter(record, internal, state, progress)
            else:
                rows = self._apply(record, accepted)
        if self._owns(state):  # dead-lettering waits: the partition may be gone since
            state.record(record.offset, ackable, rows, self._clocks.monotonic())

    def accept(self, record: SourceRecord, kind: EventKind) -> Accepted:
        """Decode, validate and route, or raise `Rejected` with the DLQ reason."""
        limit = self._settings.validation.max_event_bytes
        if len(record.value) > limit:
            raise Rejected(
                ErrorClass.INVALID,
                f"event is {len(record.value)} bytes; at most {limit} are accepted "
                "(validation.max_event_bytes)",
            )
        try:
            event, version = decode_event(
                record.value, kind, record.content_type, self._limits, self._clocks.wall()
            )
        except SchemaError as exc:
            error_class = ErrorClass.DECODE if isinstance(exc, DecodeError) else ErrorClass.INVALID
            raise Rejected(error_class, str(exc)) from exc
        expected_key = event.facility_id.encode()
        if record.key != expected_key:
            shown = record.key.decode("utf-8", "replace") if record.key is not None else "null"
            raise Rejected(
                ErrorClass.INVALID,
                f"message key {shown!r} is not the facility_id {event.facility_id!r}; "
                "events must be keyed by facility so that a facility stays on one partition",
            )
        rules = self._settings.permissions
        if isinstance(event, VarianceLogged) and rules is not None:
            problem = permission_problem(event, rules)
            if problem is not None:
                raise Rejected(ErrorClass.PERMISSION, problem, role_label(event))
        try:
            routed = self._route(event)
        except UnroutableEvent as exc:
            raise Rejected(ErrorClass.UNROUTABLE, str(exc)) from exc
        return Accepted(event, version, routed)

    def _route(self, event: CountApproved | VarianceLogged) -> Routed:
        if isinstance(event, CountApproved):
            return route_count(event, self._settings.netsuite)
        return route_variance(event, self._settings.netsuite)

    def _apply(self, record: SourceRecord, accepted: Accepted) -> dict[Feed, list[PendingRow]]:
        floors = self._sources.floors(record.partition)
        pruning = self.pruning(floors, record_time_ms(record, accepted.event))
        if not self.apply_to_tables(record, accepted, pruning):
            return {}
        return self._rows(record, accepted)

    def pruning(self, floors: dict[str, int], at_ms: int) -> Pruning:
        """What positions may forget when written by an event recorded at `at_ms`."""
        if self._horizon_ms <= 0:
            return KEEP_ALL
        return Pruning(floors, at_ms - self._horizon_ms)

    def apply_to_tables(
        self, record: SourceRecord, accepted: Accepted, pruning: Pruning = KEEP_ALL
    ) -> bool:
        """Apply an accepted event to the positions it touches; False when it is a
        producer's duplicate (another copy of an event already applied).

        Also used on its own by `rebuild-table` to fold the input topics into positions.
        """
        event = accepted.event
        kind = self._kinds[record.topic]
        copy = (record.topic, record.offset)
        keys = [position_key(c.facility_id, c.product_id) for c in accepted.routed.changes]
        stored = [self._inventory.get(key) for key in keys]
        positions = [Position.from_json(s) if s is not None else None for s in stored]
        applied_copies = [p.applied_copy(event.event_id) if p else None for p in positions]
        first = next((c for c in applied_copies if c is not None and c != copy), None)
        if first is not None:
            metrics.events(kind.value, "duplicate").inc()
            log.info(
                "event %s at %s:%d:%d duplicates its copy at %s:%d; ignored",
                event.event_id,
                record.topic,
                record.partition,
                record.offset,
                *first,
            )
            return False
        at_ms = record_time_ms(record, event)
        applied = Applied(event.event_id, event.occurred_at, record.topic, record.offset, at_ms)
        changed = 0
        for key, change, position, applied_copy in zip(
            keys, accepted.routed.changes, positions, applied_copies, strict=True
        ):
            if applied_copy is None:
                self._inventory[key] = apply_change(position, change, applied, pruning).to_json()
                changed += 1
        outcome = "applied" if changed or not accepted.routed.changes else "redelivered"
        metrics.events(kind.value, outcome).inc()
        if accepted.routed.unexported_reason is not None and changed:
            metrics.unexported(accepted.routed.unexported_reason).inc()
        return True

    def _rows(self, record: SourceRecord, accepted: Accepted) -> dict[Feed, list[PendingRow]]:
        # Rows come from the event alone, even for a re-delivery: whether they are already
        # published is the ledger's call, not the table's.
        record_at = datetime.fromtimestamp((record.timestamp_ms or 0) / 1000, tz=UTC)
        rows: dict[Feed, list[PendingRow]] = defaultdict(list)
        for row in accepted.routed.rows:
            rows[row.feed].append(
                PendingRow(record.offset, row, record_at, accepted.schema_version)
            )
        return rows

    async def _dead_letter(
        self, record: SourceRecord, rejected: Rejected, state: SourceState, progress: Progress
    ) -> None:
        """Send the record to the DLQ unless an earlier attempt did: at most once each.

        The pending mark is made durable before the send, so that a successor after a
        crash knows to look for the dead letter before sending it again.
        """
        mark = progress.dead_letters.get(record.offset)
        if mark is not None and mark.sent:
            return  # a re-delivery of an event already dead-lettered
        letter = DeadLetter(record, rejected.error_class, rejected.reason)
        if mark is not None and mark.pending_from is not None:
            found = await self._dead_letters.find(record, mark.pending_from)
            if found is not None:
                self._mark_dead(state, progress, record.offset, DeadLetterMark(found))
                return
        else:
            start = max(self._dead_letters.known_end(), progress.highest_dlq_offset() + 1)
            self._mark_dead(state, progress, record.offset, DeadLetterMark(pending_from=start))
            await self._durable()
        if not self._owns(state):
            return  # revoked meanwhile: the next owner finds the pending mark
        kind = self._kinds[record.topic]
        metrics.events(kind.value, "dead-lettered").inc()
        metrics.DEAD_LETTERS.labels(record.topic, rejected.error_class.value).inc()
        if rejected.role is not None:
            metrics.PERMISSION_REFUSALS.labels(rejected.role).inc()
        log.warning(
            "dead-lettering %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            rejected.error_class.value,
            rejected.reason,
        )
        offset = await self._dead_letters.send(letter)
        self._mark_dead(state, progress, record.offset, DeadLetterMark(offset))

    def _mark_dead(
        self, state: SourceState, progress: Progress, offset: int, mark: DeadLetterMark
    ) -> None:
        # Only the owner writes a partition's progress: a revoked state's would overwrite
        # the next owner's.
        if self._owns(state):
            progress.dead_letters[offset] = mark
            self._sources.save_progress(state)

    def _owns(self, state: SourceState) -> bool:
        return self._sources.get(state.source) is state
