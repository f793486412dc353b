"""Carrying out each consumed record's decision (docs/event-protocol.md).

The pure core decides (`streams.core.decision.decide`); this module does: it writes the
positions, hands dead letters to the changelog writer, records the offset with its rows,
and owns every await and every error on the way. Its rules:

- records are taken strictly in offset order per partition (`streams.core.pending`): a
  record seen before rewinds the partition, a record past a gap is refused until the
  broker shows that nothing consumable lies in the gap;
- an error while carrying a decision out never moves past the event: the whole partition
  number stops (a *halt*), everything it wrote since its last durable flush is dropped,
  and after a backoff it is consumed again from its first event that is not durable, so
  the event is applied or dead-lettered exactly once when the cause is gone. Other
  partitions go on. `/ready`, `lag` and the console name the halted partition and why;
- a partition whose rows or changelog writes pile up is paused on its own, not the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka.errors import IllegalStateError

from schemas.models import EventKind
from sinks.retry import Backoff
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.core.dead_letter import DeadLetterRecord, SourceRecord, decode_headers, fitted
from streams.core.decision import Apply, Decision, Reject, Rules, Skip, decide
from streams.core.pending import Delivery, Halt, SourceRegistry, SourceState
from streams.core.permissions import MISSING
from streams.core.progress import DeadLetterMark
from streams.kafka.traits import BrokerTraits
from streams.logs import coords
from streams.worker.changelog_writer import FLUSH_BYTES, MAX_PENDING_BYTES, ChangelogWriteFailed
from streams.worker.tables import ChangelogTable

log = logging.getLogger(__name__)

# How long a refused gap waits for the consumer to come back before it is sought again.
RESEEK_SECONDS = 0.5

HALTED, ROWS, CHANGELOG = "halted", "rows", "changelog"


class Consumer(Protocol):
    """The group's consumer, as ingest steers it: one source partition at a time
    (`streams.worker.transport.GroupConsumer`)."""

    def assigned(self, source: SourcePartition) -> bool: ...

    async def seek(self, source: SourcePartition, offset: int) -> None: ...

    def pause(self, source: SourcePartition) -> None: ...

    def resume(self, source: SourcePartition) -> None: ...

    async def rejoin(self) -> None:
        """Ask the group for a new assignment."""


class Log(Protocol):
    """The changelog writer, as the worker steers it (`streams.worker.changelog_writer`)."""

    @property
    def dlq_end(self) -> int:
        """No dead letter this process wrote is at or past this DLQ offset."""
        ...

    def dead_letter(
        self, partition: int, source: SourcePartition, offset: int, record: DeadLetterRecord
    ) -> None: ...

    def pending_bytes(self, partition: int) -> int: ...

    def letter_queued(self, source: SourcePartition, offset: int) -> bool: ...

    def note_prune(self, partition: int) -> None:
        """The partition's next flush carries a position write that forgot an event."""
        ...

    def claimed(self, partition: int) -> bool: ...

    def fail(self, partition: int, reason: str) -> None: ...

    async def rollback(self, partition: int) -> None: ...


class Broker(Protocol):
    """What the worker asks the broker about an input partition and the DLQ."""

    async def start_of(self, source: SourcePartition) -> int:
        """Where the group resumes `source`: its committed offset, else the log start."""
        ...

    async def first_record_at(self, source: SourcePartition, offset: int) -> int | None:
        """The offset of the first committed record at or after `offset`, if any."""
        ...

    async def find_dead_letter(self, record: SourceRecord, from_offset: int) -> int | None:
        """The DLQ offset of `record`'s dead letter at or after `from_offset`, if any."""
        ...

    async def close(self) -> None: ...


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
        self._progress = progress
        self._writer = writer
        self._traits = traits
        self._broker = broker
        self._consumer = consumer
        self._max_rows = max_pending_rows
        self._max_letter = max_dead_letter_bytes
        self._backoff = backoff
        self._monotonic = monotonic
        self._recoveries: dict[int, asyncio.Task[None]] = {}
        self._backoffs: dict[int, Backoff] = {}  # per partition number, while it fails
        self._halted_at: dict[int, int] = {}
        self._realigning: asyncio.Task[None] | None = None
        # Per partition with a refused gap: the offset it waits for, and who seeks it again.
        self._gap_watches: dict[SourcePartition, tuple[int, asyncio.Task[None]]] = {}
        self._source_of: dict[tuple[str, int], SourcePartition] = {}

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
        record = to_record(event)
        source = self._source(record.topic, record.partition)
        state = self._state(source)
        if state is None:
            return
        if state.paused:
            self._hold(state)  # fetched before its pause took hold: it comes again
            return
        try:
            if not await self._in_order(state, record):
                return
            progress = self._sources.progress_of(state)
            kind = self._kinds[record.topic]
            decision = decide(
                record,
                kind,
                progress=progress,
                positions=self._inventory,
                floors=batch.floors(self._sources, record.partition),
                rules=self._rules,
            )
            if isinstance(decision, Reject):
                # Before the event is recorded: a flush while it awaits must not find the
                # event consumed without its dead letter.
                await self._dead_letter(state, record, decision)
            self._carry_out(state, record, event, decision, batch)
        except Exception as exc:
            self.halt(record.partition, record.offset, exc)
            return
        batch.states[source] = state
        # At every event, not at the batch's end: the rest of a batch waits behind a pause
        # (its events are fetched again), so rows never pile past the bound by a batch.
        self._relieve_or_hold(state)
        if self._writer.pending_bytes(record.partition) >= FLUSH_BYTES:
            # Between two events, never inside one: let the flusher take what waits. A
            # batch that never yields held a whole batch's writes (125,000 positions for
            # 500 counts of 250 lines) in memory until its end: three times the peak RSS.
            await asyncio.sleep(0)

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

    # -- order -------------------------------------------------------------------------

    async def _in_order(self, state: SourceState, record: SourceRecord) -> bool:
        """Whether `record` is the next one to take; else make the consumer go where the
        next one is, and say no."""
        delivery = state.delivery(record.offset)
        if delivery is Delivery.FIRST:
            start = await self._broker.start_of(state.source)
            state.start_at(min(start, record.offset))
            delivery = state.delivery(record.offset)
        if delivery is Delivery.AGAIN:
            # The consumer went back (as Faust does after every rebalance), or one stale
            # message came through after later ones. Take the events again from here, and
            # make sure the consumer goes on from here: after a stale message it would go
            # on after the last one, and the events in between would never come back.
            state.rewind(record.offset)
            await self._seek(state.source, record.offset + 1)
            return self._sources.owns(state)
        if delivery is Delivery.AHEAD:
            return await self._past_gap(state, record)
        return True

    async def _past_gap(self, state: SourceState, record: SourceRecord) -> bool:
        """A record after offsets that were not delivered: taken only if the broker holds
        nothing consumable in between (transaction markers, aborted records)."""
        expected = state.next_offset
        assert expected is not None  # noqa: S101 - AHEAD implies a known start
        awaiting = state.awaiting
        if awaiting is None or awaiting[0] != expected:
            first = await self._broker.first_record_at(state.source, expected)
            state.awaiting = awaiting = (expected, first)
            log.info(
                "%s[%d]: offset %d came before %d (the first record there is %s)",
                record.topic,
                record.partition,
                record.offset,
                expected,
                first,
                extra=coords(record.topic, record.partition, record.offset),
            )
        first = awaiting[1]
        if first is None:
            # The broker delivered `record`, so something consumable lies at or before it:
            # "nothing there" is an answer from before it arrived. Never skip on it; go
            # back to `expected` and ask again at the next record past the gap.
            state.awaiting = None
            log.warning(
                "%s[%d]: the broker said nothing lies at or after %d, yet delivered %d; "
                "not skipping: going back to %d",
                record.topic,
                record.partition,
                expected,
                record.offset,
                expected,
                extra=coords(record.topic, record.partition, record.offset),
            )
            await self._seek(state.source, expected)
            return False
        if first >= record.offset:
            state.skip_to(record.offset)
            return True
        # Faust passes on no record below the last one it delivered, and every stale
        # record that comes through moves that mark up again: the consumer is sought back
        # to `expected` now and then again, until it delivers from there. Not at every
        # stale record: thousands may be queued, and each seek restarts the fetch.
        watching = self._gap_watches.get(state.source)
        if watching is None or watching[0] != expected:
            if watching is not None:
                watching[1].cancel()
            await self._seek(state.source, expected)
            watch = asyncio.create_task(self._reseek(state, expected))
            self._gap_watches[state.source] = (expected, watch)
        return False

    async def _reseek(self, state: SourceState, expected: int) -> None:
        """Seek `state` back to `expected` every `RESEEK_SECONDS` until it takes it."""
        try:
            while True:
                await asyncio.sleep(RESEEK_SECONDS)
                waiting = state.next_offset == expected and state.awaiting is not None
                if not waiting or state.paused or not self._sources.owns(state):
                    return
                await self._seek(state.source, expected)
        except IllegalStateError:
            return  # revoked meanwhile: the next owner starts where the group resumes
        except Exception as exc:
            self.halt(state.source.partition, expected, exc)
        finally:
            if self._gap_watches.get(state.source, (None,))[0] == expected:
                del self._gap_watches[state.source]

    def realign(self) -> None:
        """The flow resumed after a rebalance: make every owned partition deliver from
        the next record it needs. Records Faust dropped while its flow was stopped would
        otherwise come back only once a later record showed the gap, and never for a
        partition that receives nothing more."""
        if self._realigning is not None:
            self._realigning.cancel()
        self._realigning = asyncio.create_task(self._realign())

    async def _realign(self) -> None:
        for state in list(self._sources):
            if state.paused or not self._sources.owns(state):
                continue  # its unpause seeks it
            try:
                await self._seek_to_next(state)
            except IllegalStateError:
                return  # rebalancing again: the flow resumes, and this runs, once more
            except Exception as exc:
                self.halt(state.source.partition, state.next_offset or 0, exc)

    async def _seek_to_next(self, state: SourceState) -> None:
        """Seek to the record after the last one taken, or before anything was taken, to
        where the group resumes."""
        offset = state.next_offset
        if offset is None:
            offset = await self._broker.start_of(state.source)
        if self._sources.owns(state):
            await self._seek(state.source, offset)

    async def close(self) -> None:
        if self._realigning is not None:
            self._realigning.cancel()
        for task in [*self._recoveries.values(), *(t for _, t in self._gap_watches.values())]:
            task.cancel()
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
        self, state: SourceState, record: SourceRecord, rejected: Reject
    ) -> None:
        """Every await first, then every write, so that a failure never leaves a half."""
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
        if rejected.pending_from is not None:
            if self._writer.letter_queued(state.source, record.offset):
                return  # delivered again before its dead letter went out
            found = await self._broker.find_dead_letter(record, rejected.pending_from)
            if found is not None:
                self._sources.mark_dead_letter(state, record.offset, DeadLetterMark(found))
                return
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
            return
        progress = self._sources.progress_of(state)
        start = max(self._writer.dlq_end, progress.highest_dlq_offset() + 1)
        # The pending mark goes out with the flush; the dead letter right after it.
        self._sources.mark_dead_letter(state, record.offset, DeadLetterMark(pending_from=start))
        self._writer.dead_letter(record.partition, source, record.offset, dead)

    async def _seek(self, source: SourcePartition, offset: int) -> None:
        await self._consumer.seek(source, offset)

    # -- pauses ------------------------------------------------------------------------

    def _hold(self, state: SourceState) -> None:
        self._consumer.pause(state.source)

    def _pause(self, state: SourceState, cause: str) -> None:
        if cause not in state.paused:
            state.paused.add(cause)
            self._hold(state)
            self._count_pauses()

    async def _unpause(self, state: SourceState, cause: str) -> None:
        if cause not in state.paused:
            return
        state.paused.discard(cause)
        self._count_pauses()
        if not state.paused and self._sources.owns(state):
            await self._seek_to_next(state)
            self._consumer.resume(state.source)

    def _relieve_or_hold(self, state: SourceState) -> None:
        if state.pending_rows > self._max_rows:
            self._pause(state, ROWS)
        if self._writer.pending_bytes(state.source.partition) > MAX_PENDING_BYTES:
            for sibling in self._sources.of_partition(state.source.partition):
                self._pause(sibling, CHANGELOG)

    async def published(self, state: SourceState) -> None:
        """The publish loop published some of `state`'s rows."""
        if ROWS in state.paused and state.pending_rows <= self._max_rows // 2:
            await self._unpause(state, ROWS)

    def _count_pauses(self) -> None:
        states = list(self._sources)
        for cause in (ROWS, CHANGELOG, HALTED):
            metrics.PAUSED.labels(cause).set(sum(1 for s in states if cause in s.paused))

    # -- the writer's events -------------------------------------------------------------

    def flushed(self, partition: int) -> None:
        states = self._sources.of_partition(partition)
        past = self._halted_at.get(partition)
        if past is not None and states and all(s.durable_past(past) for s in states):
            # Durable past where it last halted: the next halt starts a fresh backoff.
            del self._halted_at[partition]
            self._backoffs.pop(partition, None)
        if self._writer.pending_bytes(partition) > MAX_PENDING_BYTES // 2:
            return
        for state in states:
            if CHANGELOG in state.paused:
                asyncio.create_task(self._unpause(state, CHANGELOG))  # noqa: RUF006 - short

    def failed(self, partition: int, error: ChangelogWriteFailed) -> None:
        states = self._sources.of_partition(partition)
        offset = min((s.resume_offset() for s in states), default=0)
        self.halt(partition, offset, error)

    # -- halts -------------------------------------------------------------------------

    def halt(self, partition: int, offset: int, error: BaseException) -> None:
        """Stop partition number `partition`: nothing of it is written, acked or consumed
        until it is rolled back and, after a backoff, consumed again."""
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        backoff = self._backoffs.setdefault(
            partition, Backoff(self._backoff.initial, self._backoff.maximum)
        )
        delay = backoff.failed(self._monotonic())
        first = partition not in self._halted_at
        self._halted_at[partition] = max(offset, self._halted_at.get(partition, offset))
        self._sources.halts[partition] = Halt(offset, reason, time.time(), backoff.failures)
        self._writer.fail(partition, reason)
        for state in self._sources.of_partition(partition):
            self._pause(state, HALTED)
        metrics.HALTS.labels(str(partition)).inc()
        metrics.HALTED.set(len(self._sources.halts))
        unexpected = not isinstance(error, ChangelogWriteFailed)
        log.log(
            logging.ERROR if first else logging.WARNING,
            "partition %d HALTED at offset %d (attempt %d): %s; nothing past it is acked; "
            "it is consumed again from its last durable event in %.1fs",
            partition,
            offset,
            backoff.failures,
            reason,
            delay,
            exc_info=error if first and unexpected else None,
            extra=coords(None, partition, offset),
        )
        if partition not in self._recoveries:
            self._recoveries[partition] = asyncio.create_task(self._recover(partition, delay))

    async def _recover(self, partition: int, delay: float) -> None:
        try:
            await self._roll_back(partition)
            await asyncio.sleep(delay)
            if partition not in self._sources.halts:
                return  # revoked meanwhile
            if not self._writer.claimed(partition):
                # Fenced, or its transaction failed: only a new assignment opens it again
                # (never this worker on its own: it may have lost the partition already).
                log.warning(
                    "partition %d: asking the group for a new assignment",
                    partition,
                    extra=coords(None, partition),
                )
                await self._consumer.rejoin()
                return
            del self._sources.halts[partition]
            metrics.HALTED.set(len(self._sources.halts))
            log.info(
                "partition %d: consuming again after its halt",
                partition,
                extra=coords(None, partition),
            )
            for state in self._sources.of_partition(partition):
                await self._unpause(state, HALTED)
        except Exception as exc:
            # Halted again (the broker question of a seek failed, say): a new attempt.
            self._recoveries.pop(partition, None)
            self.halt(partition, self._halted_at.get(partition, 0), exc)
        finally:
            if self._recoveries.get(partition) is asyncio.current_task():
                del self._recoveries[partition]

    async def _roll_back(self, partition: int) -> None:
        await self._writer.rollback(partition)
        self._inventory.forget_unwritten(partition)
        self._progress.forget_unwritten(partition)
        for state in self._sources.of_partition(partition):
            state.rewind_to_durable()
