"""Table changelog records, produced in large batches instead of one send each.

Faust produces every table write through its producer buffer, one message and several
awaits at a time: about 2,000 writes/s on the benchmark machine, while the same broker
takes 67,000 records/s and more in batches (docs/performance.md). A count of 200 lines is
200 position writes, so that path bounded the whole pipeline.

The tables (`streams.worker.tables`) append their changelog records here, synchronously: the
same bytes on the same partitions as Faust's own. A flush hands everything appended so
far to an aiokafka producer as one batch per changelog partition and waits for the
broker's acks. As each batch is acked, its records go back to their table with their
changelog offsets, and only then into the table's local store: local state is a cache of
the changelog, never ahead of it. Once the whole flush is acked, each source partition
learns that the events it had consumed are durable, and `streams.core.pending` acks no event
before that: no offset is committed past an event whose table writes could still be lost.

One flush is in flight at a time, so a partition's records reach the broker in the order
they were written, and the writes of every consumed event belong to this flush or an
earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from sinks.feed_publisher import FaultHook, no_faults
from streams.config import KafkaConfig
from streams.core.pending import SourceRegistry
from streams.kafka.broker import client_options

log = logging.getLogger(__name__)

# Large enough that a flush is usually one batch per partition, within the broker's
# default message.max.bytes (1 MiB).
MAX_BATCH_BYTES = 1_000_000
# A flush starts once this much is appended, or `LINGER_SECONDS` after the last one.
FLUSH_BYTES = 256 * 1024
LINGER_SECONDS = 0.05
# The agent waits for a flush while more than this is appended: memory stays bounded.
MAX_PENDING_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Persisted:
    """A changelog record the broker acknowledged, at its offset; `tag` is the writer's."""

    offset: int
    key: bytes | None
    value: bytes | None
    tag: Any


OnPersisted = Callable[[TopicPartition, Sequence[Persisted]], None]


class ChangelogWriteFailed(RuntimeError):
    """A flush failed: its records are gone, so no later flush may mark events durable."""


@dataclass
class _Batch:
    builder: BatchBuilder
    records: list[tuple[bytes | None, bytes | None, Any]] = field(default_factory=list)


@dataclass
class _Pending:
    batches: dict[TopicPartition, list[_Batch]] = field(default_factory=dict)
    size: int = 0


class ChangelogWriter:
    def __init__(
        self,
        kafka: KafkaConfig,
        sources: SourceRegistry,
        *,
        request_timeout_ms: int = 40_000,
        faults: FaultHook = no_faults,
    ) -> None:
        self._kafka = kafka
        self._faults = faults
        self._request_timeout_ms = request_timeout_ms
        self._failure: BaseException | None = None
        self._sources = sources
        self._producer: AIOKafkaProducer | None = None
        self._started = asyncio.Event()
        self._starting = asyncio.Lock()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending = _Pending()
        self._on_persisted: dict[str, OnPersisted] = {}

    def register(self, topic: str, on_persisted: OnPersisted) -> None:
        """Call `on_persisted(tp, records)` after each of `topic`'s batches is acked."""
        self._on_persisted[topic] = on_persisted

    async def throttle(self) -> None:
        """After each event: start a flush when enough is appended, wait when too much is."""
        if self._pending.size >= FLUSH_BYTES:
            self._wake.set()
        if self._pending.size >= MAX_PENDING_BYTES:
            await self.flush()

    def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, tag: Any = None
    ) -> None:
        """Queue a record for the next flush; `tag` comes back with it once it is acked."""
        tp = TopicPartition(topic, partition)
        batches = self._pending.batches.setdefault(tp, [])
        if not batches or batches[-1].builder.append(timestamp=None, key=key, value=value) is None:
            batch = _Batch(self._started_producer().create_batch())
            if batch.builder.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"a {topic} record of {len(value or b'')} bytes fits no batch")
            batches.append(batch)
        batches[-1].records.append((key, value, tag))
        self._pending.size += len(key or b"") + len(value or b"")

    def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the changelog writer is not started")
        return self._producer

    async def flush(self) -> None:
        """Produce everything appended so far; then the events consumed so far are durable."""
        if self._producer is None:
            return  # nothing was appended: appending needs the producer
        async with self._lock:
            if self._failure is not None:
                raise ChangelogWriteFailed(f"an earlier flush failed: {self._failure}")
            pending, self._pending = self._pending, _Pending()
            consumed = self._sources.consumed()
            try:
                await self._produce(pending)
                if pending.batches:
                    await self._faults("changelog-acked")
            except Exception as exc:
                # The events stay unacked, and their successor consumes them again; going
                # on would ack later events over the lost writes. The failure stops the
                # flusher task, and with it the worker.
                self._failure = exc
                log.exception("changelog write failed; no event is acked from now on")
                raise ChangelogWriteFailed(str(exc)) from exc
            for source, mark in consumed.items():
                self._sources.mark_durable(source, mark)

    async def _produce(self, pending: _Pending) -> None:
        producer = self._started_producer()
        if pending.batches:
            await self._faults("changelog-unsent")
        sent: list[tuple[TopicPartition, _Batch, asyncio.Future[RecordMetadata]]] = []
        for tp, batches in pending.batches.items():
            for batch in batches:
                future = await producer.send_batch(batch.builder, tp.topic, partition=tp.partition)
                sent.append((tp, batch, future))
        for tp, batch, future in sent:
            base = (await future).offset
            on_persisted = self._on_persisted.get(tp.topic)
            if on_persisted is not None:
                records = [
                    Persisted(base + index, key, value, tag)
                    for index, (key, value, tag) in enumerate(batch.records)
                ]
                on_persisted(tp, records)

    async def start(self) -> None:
        """Start the producer once (on assignment, or at the first event if that comes
        first); concurrent callers wait for the first."""
        if self._producer is not None:
            return
        async with self._starting:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                **client_options(self._kafka),
                acks="all",
                max_batch_size=MAX_BATCH_BYTES,
                request_timeout_ms=self._request_timeout_ms,
            )
            await producer.start()
            self._producer = producer
            self._started.set()

    async def run(self) -> None:
        """Flush when woken or every `LINGER_SECONDS`, from the start until cancelled."""
        await self._started.wait()
        try:
            while True:
                await self.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), LINGER_SECONDS)
                self._wake.clear()
        finally:
            await self.stop()

    async def stop(self) -> None:
        # Unflushed records belong to unacked events, which are consumed again.
        if self._producer is not None:
            await self._producer.stop()
