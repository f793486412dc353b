"""Holding an input partition back: paused while its rows or its changelog writes pile up,
halted when carrying an event out failed (docs/event-protocol.md, "Halts").

A halt stops the whole partition number: nothing of it is written, acked or consumed
until everything it wrote since its last durable flush is dropped and, after a backoff, it
is consumed again from its first event that is not durable. The event that failed is then
applied or dead-lettered exactly once, when the cause is gone. Other partitions go on.
`/ready`, `lag` and the console name a halted partition and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sinks.retry import Backoff
from streams import metrics
from streams.core.pending import Halt, SourceRegistry, SourceState
from streams.logs import coords
from streams.worker.changelog_writer import MAX_PENDING_BYTES, ChangelogWriteFailed
from streams.worker.ingest_ports import Broker, Consumer, Log
from streams.worker.ordering import seek_to_next
from streams.worker.tables import ChangelogTable

log = logging.getLogger(__name__)

HALTED, ROWS, CHANGELOG = "halted", "rows", "changelog"


class PartitionHolds:
    """Pauses and halts of input partitions; also what the changelog writer reports
    (`flushed`, `failed`) and the publish loop (`published`)."""

    def __init__(
        self,
        *,
        sources: SourceRegistry,
        tables: tuple[ChangelogTable, ...],
        writer: Log,
        broker: Broker,
        consumer: Consumer,
        max_pending_rows: int,
        backoff: Backoff,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = sources
        self._tables = tables
        self._writer = writer
        self._broker = broker
        self._consumer = consumer
        self._max_rows = max_pending_rows
        self._backoff = backoff
        self._monotonic = monotonic
        self._recoveries: dict[int, asyncio.Task[None]] = {}
        self._backoffs: dict[int, Backoff] = {}  # per partition number, while it fails
        self._halted_at: dict[int, int] = {}
        self._delays: dict[int, float] = {}  # the latest halt's backoff, per partition

    # -- pauses ------------------------------------------------------------------------

    def hold(self, state: SourceState) -> None:
        """Stop fetching `state`, without a cause of its own: a record fetched before its
        pause took hold comes again."""
        self._consumer.pause(state.source)

    def relieve_or_hold(self, state: SourceState) -> None:
        """After an event of `state`: pause it, or its whole partition number, once its
        rows or its changelog writes are past their bounds. Not for rows while a sealed
        batch needs more of them: it is published only once they are consumed."""
        if state.pending_rows > self._max_rows and not state.seal_waits():
            self._pause(state, ROWS)
        if self._writer.pending_bytes(state.source.partition) > MAX_PENDING_BYTES:
            for sibling in self._sources.of_partition(state.source.partition):
                self._pause(sibling, CHANGELOG)

    async def published(self, state: SourceState) -> None:
        """The publish loop published some of `state`'s rows, or found a sealed batch
        that needs more of them."""
        relieved = state.pending_rows <= self._max_rows // 2 or state.seal_waits()
        if ROWS in state.paused and relieved:
            await self._unpause(state, ROWS)

    def _pause(self, state: SourceState, cause: str) -> None:
        if cause not in state.paused:
            state.paused.add(cause)
            self.hold(state)
            self._count_pauses()

    async def _unpause(self, state: SourceState, cause: str) -> None:
        if cause not in state.paused:
            return
        state.paused.discard(cause)
        self._count_pauses()
        if not state.paused and self._sources.owns(state):
            await seek_to_next(state, self._sources, self._broker, self._consumer)
            self._consumer.resume(state.source)

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
        self._delays[partition] = delay
        if partition not in self._recoveries:
            self._recoveries[partition] = asyncio.create_task(self._recover(partition))

    async def _recover(self, partition: int) -> None:
        """Roll back, wait out the backoff, consume again; all over again while a newer
        halt came meanwhile (its writes since the rollback are not rolled back), so that
        every halt gets a rollback of its own and none is lifted without one."""
        try:
            while (halt := self._sources.halts.get(partition)) is not None:
                await self._roll_back(partition)
                await asyncio.sleep(self._delays.get(partition, 0.0))
                if self._sources.halts.get(partition) is not halt:
                    continue  # halted again, or revoked (None ends it)
                if not self._writer.claimed(partition):
                    # Fenced, or its transaction failed: only a new assignment opens it
                    # again (never this worker on its own: it may have lost it already).
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
                    if partition in self._sources.halts:
                        break  # halted again while resuming: the loop rolls back again
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
        for table in self._tables:
            table.forget_unwritten(partition)
        for state in self._sources.of_partition(partition):
            state.rewind_to_durable()

    def close(self) -> None:
        for task in self._recoveries.values():
            task.cancel()
