"""Table changelog records and dead letters, per partition number, in large batches.

Faust produces every table write through its producer buffer, one message and several
awaits at a time: about 2,000 writes/s on the benchmark machine, while the same broker
takes 67,000 records/s and more in batches (docs/performance.md). A count of 200 lines is
200 position writes, so that path bounded the whole pipeline.

The tables (`streams.worker.tables`) append their changelog records here, synchronously:
the same bytes on the same partitions as Faust's own. Everything a partition number
writes (both input topics of that number share one changelog partition per table) waits
in that partition's log until its flush: one batch per changelog partition, and its dead
letters. As each batch is acknowledged its records go back to their table with their
changelog offsets, and only then into the table's local store: local state is a cache of
the changelog, never ahead of it. Once the whole flush is done, the partition's sources
learn that the events they had consumed are durable, and `streams.core.pending` acks no
event before that.

Each partition number flushes on its own, so a partition whose leader is away holds up
no other. Where the broker has transactions (`streams.kafka.traits`), each partition
number has its own transactional producer, `<group>.changelog.p<N>`, opened when the
partition is assigned: that fences any earlier owner (a worker paused past its session,
then woken), whose writes then fail with `ProducerFenced`. A flush is one transaction of
the changelog records and dead letters, so a dead letter and the progress mark that
records it exist together or not at all, and readers read committed records only. On
Tansu, without transactions, dead letters are sent after the changelog batch that holds
their pending mark (`streams.core.progress`).

A flush that fails leaves its partition's log failed: nothing more is flushed or marked
durable for it until the worker has rolled the partition back (`rollback`) and consumes
it again from its last durable event (`streams.worker.ingest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from aiokafka.structs import RecordMetadata, TopicPartition

from sinks.feed_publisher import FaultHook, no_faults
from sinks.source_partition import SourcePartition
from streams.config import KafkaConfig
from streams.core.dead_letter import DeadLetterRecord
from streams.core.pending import SourceRegistry
from streams.core.progress import DeadLetterMark
from streams.errors import StreamsError
from streams.kafka.broker import DLQ_MAX_MESSAGE_BYTES
from streams.kafka.traits import BrokerTraits
from streams.logs import coords
from streams.worker.changelog_pending import Batch, Letter, Pending
from streams.worker.changelog_producers import ChangelogEnds, abandon, started_producer

log = logging.getLogger(__name__)

# A partition flushes once this much is appended, or `LINGER_SECONDS` after its last flush.
FLUSH_BYTES = 256 * 1024
LINGER_SECONDS = 0.05
# A partition's consumption pauses while more than this waits for its flush.
MAX_PENDING_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Persisted:
    """A changelog record the broker acknowledged, at its offset; `tag` is the writer's."""

    offset: int
    key: bytes | None
    value: bytes | None
    tag: Any


OnPersisted = Callable[[TopicPartition, Sequence[Persisted]], None]


class ChangelogWriteFailed(StreamsError):
    """A partition's flush failed: its records and dead letters are gone, so nothing more
    is marked durable for it until it is rolled back. Retriable: after a backoff the
    partition's events are consumed and written again."""

    retriable = True


class Fenced(ChangelogWriteFailed):
    """A newer producer owns this partition's transactional id: it is not ours any more.
    Never retried: only a new assignment opens the partition again."""

    retriable = False


class PartitionEvents(Protocol):
    """What the writer tells the worker about a partition number."""

    def flushed(self, partition: int) -> None: ...

    def failed(self, partition: int, error: ChangelogWriteFailed) -> None: ...


class _NoEvents:
    def flushed(self, partition: int) -> None:
        pass

    def failed(self, partition: int, error: ChangelogWriteFailed) -> None:
        log.error(
            "changelog partition %d failed: %s", partition, error, extra=coords(None, partition)
        )


class _Log:
    """One partition number: what waits for its next flush, and who flushes it."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.pending = Pending()
        self.producer: AIOKafkaProducer | None = None  # its own, where transactional
        self.lock = asyncio.Lock()  # one flush at a time keeps its records in order
        self.wake = asyncio.Event()
        self.failure: ChangelogWriteFailed | None = None
        self.fenced = False
        self.broken = False  # its transaction failed: only a new assignment writes it again
        self.task: asyncio.Task[None] | None = None


class ChangelogWriter:
    def __init__(
        self,
        kafka: KafkaConfig,
        sources: SourceRegistry,
        traits: BrokerTraits,
        *,
        dlq_topic: str = "",
        dlq_max_bytes: int = DLQ_MAX_MESSAGE_BYTES,
        request_timeout_ms: int = 40_000,
        linger_seconds: float = LINGER_SECONDS,
        faults: FaultHook = no_faults,
    ) -> None:
        self._kafka = kafka
        self._linger = linger_seconds
        self._sources = sources
        self._traits = traits
        self._dlq = TopicPartition(dlq_topic, 0)
        # The broker checks whole batches against max.message.bytes: dead letters share a
        # batch only within the DLQ's.
        self._limits = {self._dlq: dlq_max_bytes}
        self._faults = faults
        self._request_timeout_ms = request_timeout_ms
        # A transaction that outlasts this failed, whether or not the broker answered.
        self._transaction_seconds = request_timeout_ms / 1000 * 1.5
        self._logs: dict[int, _Log] = {}
        self._claiming = asyncio.Lock()
        self._shared: AIOKafkaProducer | None = None  # without transactions
        self._on_persisted: dict[str, OnPersisted] = {}
        self._events: PartitionEvents = _NoEvents()
        self._abandoned: set[asyncio.Task[None]] = set()  # producers of failed transactions
        self._ends = ChangelogEnds(kafka)
        self.dlq_end = 0  # no dead letter this process sent is at or past this

    def register(self, topic: str, on_persisted: OnPersisted) -> None:
        """Call `on_persisted(tp, records)` after each of `topic`'s batches is durable."""
        self._on_persisted[topic] = on_persisted

    def watch(self, events: PartitionEvents) -> None:
        self._events = events

    def claimed(self, partition: int) -> bool:
        log_ = self._logs.get(partition)
        return log_ is not None and not log_.fenced and not log_.broken

    def pending_bytes(self, partition: int) -> int:
        log_ = self._logs.get(partition)
        return log_.pending.size if log_ is not None else 0

    def letter_queued(self, source: SourcePartition, offset: int) -> bool:
        """Whether `source`'s dead letter of `offset` waits here to be sent."""
        found = self._logs.get(source.partition)
        return found is not None and any(
            (letter.source, letter.offset) == (source, offset) for letter in found.pending.letters
        )

    def note_prune(self, partition: int) -> None:
        self._log(partition).pending.pruning = True

    def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, tag: Any = None
    ) -> None:
        """Queue a record for the partition's next flush; `tag` comes back once durable."""
        self._log(partition).pending.write(TopicPartition(topic, partition), key, value, tag)
        self._maybe_wake(partition)

    def dead_letter(
        self, partition: int, source: SourcePartition, offset: int, record: DeadLetterRecord
    ) -> None:
        """Queue `source`'s dead letter of `offset` for the partition's next flush: in its
        transaction, or right after its changelog batch where there are none."""
        pending = self._log(partition).pending
        if self._traits.transactions:
            pending.add_unfolded(self._dlq, record.key, record.value, record.headers)
        else:
            pending.add_letter(Letter(source, offset, record))
        self._maybe_wake(partition)

    def _log(self, partition: int) -> _Log:
        found = self._logs.get(partition)
        if found is None:
            raise ChangelogWriteFailed(f"partition {partition} is not claimed by this worker")
        if found.failure is not None:
            raise ChangelogWriteFailed(f"partition {partition} failed: {found.failure}")
        return found

    def _maybe_wake(self, partition: int) -> None:
        found = self._logs[partition]
        if found.pending.size >= FLUSH_BYTES:
            found.wake.set()

    async def claim(self, partitions: set[int]) -> None:
        """Open the logs of newly assigned partition numbers. With transactions, each gets
        a producer of its own, whose start fences every earlier owner; then their changelog
        partitions are ended (`ChangelogEnds`)."""
        async with self._claiming:
            new = sorted(partition for partition in partitions if partition not in self._logs)
            if not new:
                return
            logs = [_Log(partition) for partition in new]
            if self._traits.transactions:
                timeout = self._request_timeout_ms
                producers = await asyncio.gather(
                    *(started_producer(self._kafka, timeout, p) for p in new)
                )
                for found, producer in zip(logs, producers, strict=True):
                    found.producer = producer
                tps = [TopicPartition(t, p) for t in sorted(self._on_persisted) for p in new]
                await self._ends.end(tps)
            elif self._shared is None:
                self._shared = await started_producer(self._kafka, self._request_timeout_ms)
            for found in logs:
                self._logs[found.partition] = found
                found.task = asyncio.create_task(self._flusher(found))
            log.info("claimed changelog partitions %s", ", ".join(map(str, new)))

    async def release(self, partitions: set[int]) -> None:
        """Flush what revoked partitions wrote, then close their logs: the next owner
        recovers every write. A failed or fenced flush loses nothing the next owner
        needs: it consumes those events again."""
        self._ends.cancel()
        found = [self._logs.pop(p) for p in sorted(partitions) if p in self._logs]
        await asyncio.gather(*(self._close(log_) for log_ in found))

    async def _close(self, found: _Log) -> None:
        if found.task is not None:
            found.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await found.task
        with contextlib.suppress(ChangelogWriteFailed):
            await self._flush(found)
        if found.producer is not None:
            with contextlib.suppress(Exception):  # a fenced producer cannot stop cleanly
                await found.producer.stop()

    def fail(self, partition: int, reason: str) -> None:
        """Flush nothing more of `partition` until `rollback`: what it appended since the
        failure began may be half of an event's writes."""
        found = self._logs.get(partition)
        if found is not None and found.failure is None:
            found.failure = ChangelogWriteFailed(reason)

    async def rollback(self, partition: int) -> None:
        """Drop what the partition appended since its last durable flush, after a failure:
        its events are consumed again. A fenced or broken log stays failed."""
        found = self._logs.get(partition)
        if found is None:
            return
        async with found.lock:
            found.pending = Pending()
            if not (found.fenced or found.broken):
                found.failure = None

    async def flush(self, partition: int) -> None:
        """Flush one partition now (tests, and revocation)."""
        found = self._logs.get(partition)
        if found is not None:
            await self._flush(found)

    async def flush_all(self) -> None:
        await asyncio.gather(*(self._flush(found) for found in list(self._logs.values())))

    async def _flusher(self, found: _Log) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(found.wake.wait(), self._linger)
            found.wake.clear()
            if found.failure is not None:
                continue
            try:
                await self._flush(found)
            except ChangelogWriteFailed as exc:
                self._events.failed(found.partition, exc)
            else:
                self._events.flushed(found.partition)

    async def _flush(self, found: _Log) -> None:
        async with found.lock:
            if found.failure is not None:
                raise found.failure
            floors = self._sources.save_floors(found.partition)
            pending, found.pending = found.pending, Pending()
            consumed = self._sources.consumed(found.partition)
            try:
                if pending:
                    await self._faults("changelog-unsent")
                    if pending.pruning:
                        await self._faults("pruning")
                    await self._write(found, pending)
                    await self._faults("changelog-acked")
                    if pending.pruning:
                        await self._faults("pruned")
            except asyncio.CancelledError:
                # Cut short (a release or a stop): its writes are gone, so the partition's
                # next flush must not find it clean and mark their events durable.
                found.failure = ChangelogWriteFailed(
                    f"partition {found.partition}'s flush was cut short"
                )
                raise
            except Exception as exc:
                # The worker halts the partition and says why (`streams.worker.partition_holds`).
                found.failure = self._failure(found, exc)
                raise found.failure from exc
            self._sources.mark_durable(consumed, floors)

    def _failure(self, found: _Log, exc: Exception) -> ChangelogWriteFailed:
        if isinstance(exc, ChangelogWriteFailed):
            return exc
        if isinstance(exc, ProducerFenced):
            found.fenced = True
            return Fenced(
                f"partition {found.partition} is fenced: a newer owner opened its transactional "
                "id (or its transaction outlived the broker's timeout); it waits for the next "
                "assignment"
            )
        return ChangelogWriteFailed(f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _write(self, found: _Log, pending: Pending) -> None:
        # Every batch is built before the first is sent, and before a transaction begins:
        # a record too large for any fails the flush (a halt) with nothing sent, and the
        # producer stays good (a broken one would make the whole group rejoin).
        planned = list(pending.batches(bool(self._traits.transactions), self._limits))
        if not self._traits.transactions:
            self._persisted(await self._send(self._started_shared(), planned))
            await self._send_letters(self._started_shared(), pending.letters)
            return
        producer = found.producer
        if producer is None:
            raise ChangelogWriteFailed(f"partition {found.partition} has no producer")
        try:
            async with asyncio.timeout(self._transaction_seconds):
                await producer.begin_transaction()
                sent = await self._send(producer, planned)
                await self._faults("changelog-sent")  # in the log, not committed yet
                await producer.commit_transaction()
        except BaseException:
            # Whatever failed, the producer's sequence numbers may have a hole (a batch
            # the broker refused or never answered): only a new producer, opened by the
            # next assignment of this partition, writes it again.
            found.broken = True
            self._abandoned.add(asyncio.create_task(abandon(producer)))
            found.producer = None
            raise
        self._persisted(sent)

    def _started_shared(self) -> AIOKafkaProducer:
        if self._shared is None:
            raise ChangelogWriteFailed("the changelog writer is not started")
        return self._shared

    async def _send(
        self, producer: AIOKafkaProducer, planned: Sequence[tuple[TopicPartition, Batch]]
    ) -> list[tuple[TopicPartition, Batch, RecordMetadata]]:
        futures = []
        try:
            for tp, batch in planned:
                future = await producer.send_batch(batch.builder, tp.topic, partition=tp.partition)
                futures.append((tp, batch, future))
        except (KafkaError, IllegalOperation):
            # A batch the broker refused fails the transaction, and every later send then
            # says only "not in transaction": the refused batch's error is the reason.
            for _, _, earlier in futures:
                await earlier
            raise
        return [(tp, batch, await future) for tp, batch, future in futures]

    def _persisted(self, sent: Sequence[tuple[TopicPartition, Batch, RecordMetadata]]) -> None:
        for tp, batch, meta in sent:
            if tp == self._dlq:
                self.dlq_end = max(self.dlq_end, meta.offset + len(batch.records))
            on_persisted = self._on_persisted.get(tp.topic)
            if on_persisted is not None:
                records = [
                    Persisted(meta.offset + index, key, value, tag)
                    for index, (key, value, tag) in enumerate(batch.records)
                ]
                on_persisted(tp, records)

    async def _send_letters(self, producer: AIOKafkaProducer, letters: Sequence[Letter]) -> None:
        """Without transactions: each dead letter after the changelog batch holding its
        pending mark; then its offset goes into the mark (with the next flush)."""
        for letter in letters:
            record = letter.record
            meta = await producer.send_and_wait(
                self._dlq.topic,
                record.value,
                key=record.key,
                partition=self._dlq.partition,
                headers=list(record.headers),
            )
            self.dlq_end = max(self.dlq_end, meta.offset + 1)
            state = self._sources.get(letter.source)
            if state is not None:
                self._sources.mark_dead_letter(state, letter.offset, DeadLetterMark(meta.offset))

    async def stop(self) -> None:
        # Unflushed records belong to unacked events, which are consumed again.
        await self.release(set(self._logs))
        await asyncio.gather(*self._abandoned)
        if self._shared is not None:
            await self._shared.stop()
            self._shared = None
