"""Carrying out each consumed record's decision (docs/event-protocol.md).

The pure core decides (`streams.core.decision.decide`); this module does: it writes the
positions, hands dead letters to the changelog writer, records the offset with its rows,
and owns every await and every error on the way. Records are taken strictly in offset
order per partition (`streams.worker.ordering`); an error while carrying a decision out
never moves past the event: it halts the partition (`streams.worker.partition_holds`),
which also pauses a partition whose rows or changelog writes pile up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.models import EventKind
from sinks.retry import Backoff
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.core.dead_letter import SourceRecord, decode_headers, fitted
from streams.core.decision import Apply, Decision, Reject, Rules, Skip, decide
from streams.core.pending import SourceRegistry, SourceState
from streams.core.permissions import MISSING
from streams.core.progress import DeadLetterMark
from streams.kafka.traits import BrokerTraits
from streams.logs import coords
from streams.worker.changelog_writer import FLUSH_BYTES
from streams.worker.ingest_ports import Broker, Consumer, Log
from streams.worker.ordering import Ordering
from streams.worker.partition_holds import PartitionHolds
from streams.worker.tables import ChangelogTable, TableStopped

log = logging.getLogger(__name__)


class _Batch:
    """What a batch keeps until its end: the partitions it recorded events of, the durable
    floors it prunes by (looked up once: they only rise, and any of them is durable), and
    its event counts."""

    def __init__(self) -> None:
        self.states: dict[SourcePartition, SourceState] = {}
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._floors: dict[int, dict[str, int]] = {}

    def floors(self, sources: SourceRegistry, partition: int) -> dict[str, int]:
        found = self._floors.get(partition)
        if found is None:
            found = self._floors[partition] = sources.durable_floors(partition)
        return found


def to_record(event: Any) -> SourceRecord:
    message = event.message
    timestamp = message.timestamp
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=round(timestamp * 1000) if timestamp is not None else None,
        key=event.key,
        value=event.value if event.value is not None else b"",
        headers=decode_headers(_header_pairs(message.headers)),
    )


def _header_pairs(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return [(str(k), v) for k, v in headers]


class Ingest:
    def __init__(
        self,
        *,
        rules: Rules,
        kinds: Mapping[str, EventKind],
        sources: SourceRegistry,
        inventory: ChangelogTable,
        progress: ChangelogTable,
        writer: Log,
        traits: BrokerTraits,
        broker: Broker,
        consumer: Consumer,
        max_pending_rows: int,
        max_dead_letter_bytes: int,
        backoff: Backoff,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = rules
        self._labels = metrics.LabelBounds.of(rules.netsuite, rules.permissions, no_role=MISSING)
        self._kinds = kinds
        self._sources = sources
        self._inventory = inventory
        self._writer = writer
        self._traits = traits
        self._broker = broker
        self._consumer = consumer
        self._max_letter = max_dead_letter_bytes
        self._monotonic = monotonic
        self._source_of: dict[tuple[str, int], SourcePartition] = {}
        self._stopping = False  # the tables are stopping: no event is taken any more
        self._holds = PartitionHolds(
            sources=sources,
            tables=(inventory, progress),
            writer=writer,
            broker=broker,
            consumer=consumer,
            max_pending_rows=max_pending_rows,
            backoff=backoff,
            monotonic=monotonic,
        )
        self._ordering = Ordering(sources, broker, consumer, self._holds.halt)
        # What the changelog writer, the publish loop and the agent report.
        self.flushed = self._holds.flushed
        self.failed = self._holds.failed
        self.published = self._holds.published
        self.realign = self._ordering.realign

    # -- the agent's loop calls this for every batch of events ---------------------------

    async def take_batch(self, events: Sequence[Any]) -> None:
        """Carry a batch's decisions out, event by event in the order delivered; never
        raises for a failure of one partition. What may wait for the batch's end does:
        the acks and the event counts."""
        batch = _Batch()
        for event in events:
            await self._take(event, batch)
        for state in batch.states.values():
            if self._sources.owns(state):
                state.release()
        for (kind, outcome), count in batch.outcomes.items():
            metrics.events(kind, outcome).inc(count)

    async def _take(self, event: Any, batch: _Batch) -> None:
        if self._stopping:
            return  # never recorded, never acked: the next start takes it
        record = to_record(event)
        state = self._state(self._source(record.topic, record.partition))
        if state is None:
            return
        if state.paused:
            self._holds.hold(state)  # fetched before its pause took hold: it comes again
            return
        try:
            taken = await self._decide_and_carry_out(state, record, event, batch)
        except TableStopped:
            # Read before any write: this event and every later one are left untaken, and
            # the final flush makes only the events before them durable.
            self._stopping = True
            log.info(
                "the worker is stopping: events from %s[%d]@%d on are left for its next start",
                record.topic,
                record.partition,
                record.offset,
            )
            return
        except Exception as exc:
            self._failed(state, record, exc)
            return
        if not taken:
            return
        batch.states[state.source] = state
        # At every event, not at the batch's end: the rest of a batch waits behind a pause
        # (its events are fetched again), so rows never pile past the bound by a batch.
        self._holds.relieve_or_hold(state)
        if self._writer.pending_bytes(record.partition) >= FLUSH_BYTES:
            # Between two events, never inside one: let the flusher take what waits. A
            # batch that never yields held a whole batch's writes (125,000 positions for
            # 500 counts of 250 lines) in memory until its end: three times the peak RSS.
            await asyncio.sleep(0)

    async def _decide_and_carry_out(
        self, state: SourceState, record: SourceRecord, event: Any, batch: _Batch
    ) -> bool:
        """Whether the event was taken: in order, decided and carried out."""
        if not await self._ordering.in_order(state, record):
            return False
        epoch = state.epoch
        decision = decide(
            record,
            self._kinds[record.topic],
            progress=self._sources.progress_of(state),
            positions=self._inventory,
            floors=batch.floors(self._sources, record.partition),
            rules=self._rules,
        )
        # Before the event is recorded: a flush while it awaits must not find the event
        # consumed without its dead letter.
        if isinstance(decision, Reject) and not await self._dead_letter(
            state, record, decision, epoch
        ):
            return False
        self._carry_out(state, record, event, decision, batch)
        return True

    def _failed(self, state: SourceState, record: SourceRecord, exc: Exception) -> None:
        if self._sources.owns(state):
            self._holds.halt(record.partition, record.offset, exc)
            return
        # Revoked while it awaited (a seek of a partition no longer assigned): its next
        # owner takes it; a halt here would stop a partition this worker may not hold.
        log.warning(
            "%s[%d]@%d: revoked while it was taken (%s: %s)",
            record.topic,
            record.partition,
            record.offset,
            type(exc).__name__,
            exc,
            extra=coords(record.topic, record.partition, record.offset),
        )

    def _source(self, topic: str, partition: int) -> SourcePartition:
        found = self._source_of.get((topic, partition))
        if found is None:
            found = self._source_of[(topic, partition)] = SourcePartition(topic, partition)
        return found

    def _state(self, source: SourcePartition) -> SourceState | None:
        state = self._sources.get(source)
        if state is not None:
            return state
        if not self._consumer.assigned(source) or not self._writer.claimed(source.partition):
            # Revoked while in flight, or not claimed yet (a rebalance is under way): the
            # partition's owner consumes it again from the committed offset.
            return None
        # Assigned and claimed, and delivered before the assignment callback ran: take it.
        return self._sources.adopt(source)

    async def close(self) -> None:
        self._stopping = True
        self._ordering.close()
        self._holds.close()
        await self._broker.close()

    # -- doing -------------------------------------------------------------------------

    def _carry_out(
        self,
        state: SourceState,
        record: SourceRecord,
        event: Any,
        decision: Decision,
        batch: _Batch,
    ) -> None:
        first = state.first_count(record.offset)
        if first:
            batch.outcomes[(self._kinds[record.topic].value, decision.outcome.value)] += 1
        rows: Mapping[Any, Any] = {}
        if isinstance(decision, Apply):
            for key, value in decision.writes:
                self._inventory.put(key, value, record.partition)
            unexported = decision.routed.unexported_reason
            if first and decision.writes and unexported is not None:
                metrics.unexported(self._labels.reason(unexported)).inc()
            if decision.pruned:
                self._writer.note_prune(record.partition)
            rows = decision.rows
        else:
            assert isinstance(decision, Skip | Reject)  # noqa: S101 - the three decisions
        state.record(record.offset, event, rows, self._monotonic())

    async def _dead_letter(
        self, state: SourceState, record: SourceRecord, rejected: Reject, epoch: int
    ) -> bool:
        """Every await first, then every write, so that a failure never leaves a half.
        False when the event may not go on: its state changed while it awaited."""
        if rejected.pending_from is not None:
            if self._writer.letter_queued(state.source, record.offset):
                return True  # delivered again before its dead letter went out
            found = await self._broker.find_dead_letter(record, rejected.pending_from)
            if not self._sources.unchanged(state, epoch):
                return False
            if found is not None:
                self._sources.mark_dead_letter(state, record.offset, DeadLetterMark(found))
                return True
        letter = rejected.letter
        log.warning(
            "dead-lettering %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            letter.error_class.value,
            letter.reason,
            extra=coords(record.topic, record.partition, record.offset),
        )
        if rejected.detail is not None:
            log.error(
                "while deciding %s: %s",
                record.topic,
                rejected.detail,
                extra=coords(record.topic, record.partition, record.offset),
            )
        metrics.DEAD_LETTERS.labels(record.topic, letter.error_class.value).inc()
        if rejected.role is not None:
            metrics.PERMISSION_REFUSALS.labels(self._labels.role(rejected.role)).inc()
        dead = fitted(letter, self._max_letter, datetime.now(UTC))
        if len(dead.value) < len(record.value):
            log.warning(
                "the dead letter of %s[%d]@%d is cut from %d to %d bytes to fit the DLQ",
                record.topic,
                record.partition,
                record.offset,
                len(record.value),
                len(dead.value),
                extra=coords(record.topic, record.partition, record.offset),
            )
        source = state.source
        if self._traits.transactions:
            # Written in one transaction with its mark: both or neither.
            self._writer.dead_letter(record.partition, source, record.offset, dead)
            mark = DeadLetterMark(with_transaction=True)
            self._sources.mark_dead_letter(state, record.offset, mark)
            return True
        progress = self._sources.progress_of(state)
        start = max(self._writer.dlq_end, progress.highest_dlq_offset() + 1)
        # The pending mark goes out with the flush; the dead letter right after it.
        self._sources.mark_dead_letter(state, record.offset, DeadLetterMark(pending_from=start))
        self._writer.dead_letter(record.partition, source, record.offset, dead)
        return True
