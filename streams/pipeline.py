"""What happens to one consumed record: decode, validate, route, dedupe, apply, batch.

Free of Faust types so that it runs in unit tests with dicts for tables; the agent in
`streams.agents` adapts Faust events to `SourceRecord` and calls `handle`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.codec import decode_event
from schemas.exceptions import DecodeError, SchemaError
from schemas.models import CountApproved, EventKind, ValidationLimits, VarianceLogged
from sinks.batching import PendingRow
from sinks.feeds import Feed
from sinks.naming import SourcePartition
from streams import metrics
from streams.config import Settings
from streams.dlq import DeadLetter, ErrorClass, SourceRecord
from streams.positions import Applied, Position, apply_change, position_key
from streams.routing import Routed, UnroutableEvent, route_count, route_variance
from streams.sources import Ackable, SourceRegistry

log = logging.getLogger(__name__)

SendDeadLetter = Callable[[DeadLetter], Awaitable[None]]


class Rejected(Exception):
    def __init__(self, error_class: ErrorClass, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


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
        seen: MutableMapping[str, Any],
        sources: SourceRegistry,
        *,
        send_dead_letter: SendDeadLetter,
        clocks: Clocks | None = None,
    ) -> None:
        self._settings = settings
        self._kinds = kinds
        self._inventory = inventory
        self._seen = seen
        self._sources = sources
        self._send_dead_letter = send_dead_letter
        self._clocks = clocks or Clocks()
        self._limits = ValidationLimits(
            max_abs_quantity=settings.validation.max_abs_quantity,
            max_future=settings.validation.max_future,
        )

    async def handle(self, record: SourceRecord, ackable: Ackable) -> None:
        source = SourcePartition(record.topic, record.partition)
        state = self._sources.get(source)
        if state is None:
            # Revoked while in flight: the new owner consumes it from the committed offset.
            return
        if record.offset <= state.consumed_through:
            # The consumer went back, as Faust does after every rebalance: take the events
            # again from here, or rows that the stream skipped before the seek are lost.
            state.rewind(record.offset)
        kind = self._kinds[record.topic]
        try:
            accepted = self.accept(record, kind)
        except Rejected as rejected:
            await self._dead_letter(record, rejected)
            state.record(record.offset, ackable, {}, self._clocks.monotonic())
            return
        except Exception as exc:
            # A bug must not stop the stream or lose the event: keep it for re-drive.
            log.exception(
                "unexpected error on %s[%d]@%d", record.topic, record.partition, record.offset
            )
            await self._dead_letter(
                record, Rejected(ErrorClass.INTERNAL, f"{type(exc).__name__}: {exc}")
            )
            state.record(record.offset, ackable, {}, self._clocks.monotonic())
            return
        rows = self._apply(record, accepted)
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
        if not self.apply_to_tables(record, accepted):
            return {}
        return self._rows(record, accepted)

    def apply_to_tables(self, record: SourceRecord, accepted: Accepted) -> bool:
        """Apply an accepted event to the tables; False when it is a producer duplicate.

        Also used on its own by `rebuild-table` to fold the input topics into positions.
        """
        event = accepted.event
        kind = self._kinds[record.topic]
        coordinates = f"{record.topic}:{record.partition}:{record.offset}"
        first_seen = self._seen.get(event.event_id)
        if first_seen is None:
            self._seen[event.event_id] = coordinates
        elif first_seen != coordinates:
            # The producer sent this event twice; only its first copy counts.
            metrics.events(kind.value, "duplicate").inc()
            log.info(
                "event %s at %s duplicates %s; ignored", event.event_id, coordinates, first_seen
            )
            return False
        applied = Applied(event.event_id, event.occurred_at, record.topic, record.offset)
        changed = 0
        for change in accepted.routed.changes:
            key = position_key(change.facility_id, change.product_id)
            stored = self._inventory.get(key)
            position = Position.from_json(stored) if stored is not None else None
            updated = apply_change(position, change, applied)
            if updated is not None:
                self._inventory[key] = updated.to_json()
                changed += 1
        outcome = "applied" if changed or not accepted.routed.changes else "redelivered"
        metrics.events(kind.value, outcome).inc()
        if accepted.routed.unexported_reason is not None:
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

    async def _dead_letter(self, record: SourceRecord, rejected: Rejected) -> None:
        kind = self._kinds[record.topic]
        metrics.events(kind.value, "dead-lettered").inc()
        metrics.DEAD_LETTERS.labels(record.topic, rejected.error_class.value).inc()
        log.warning(
            "dead-lettering %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            rejected.error_class.value,
            rejected.reason,
        )
        await self._send_dead_letter(DeadLetter(record, rejected.error_class, rejected.reason))
