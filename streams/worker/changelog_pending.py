"""What waits for one partition number's next changelog flush, folded by key.

A table's changelog is read back as "the last record of each key wins" (Faust's recovery,
`rebuild-table`), so only the last write of a key since the partition's last flush needs
to go out: a position touched by forty events of one batch is one record, not forty. The
writes are kept by key as they come and turned into record batches only when the flush
sends them. Dead letters are never folded: each is a record of its own, in order.

Folding changes nothing a reader can tell apart: a flush is written whole or not at all
(one transaction where the broker has them), and without transactions a flush that is cut
short marks nothing durable, so its events are consumed again and write each key again;
every position write is idempotent per event (`streams.core.positions`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import TopicPartition

from sinks.source_partition import SourcePartition
from streams.core.dead_letter import DeadLetterRecord
from streams.errors import StreamsError

# Large enough that a flush is usually one batch per partition, within the broker's
# default message.max.bytes (1 MiB).
MAX_BATCH_BYTES = 1_000_000
# What a broker takes in one batch unless the topic says otherwise (Kafka's default
# message.max.bytes): the bound for one record, where `limits` names none.
BROKER_MESSAGE_BYTES = 1_048_588

Key = bytes | None
Value = bytes | None
Headers = tuple[tuple[str, bytes], ...]
Record = tuple[Key, Value, Any, Headers]  # key, value, tag, headers


class RecordTooLarge(StreamsError):
    """A record larger than its topic's batch limit: its flush fails, and so its partition
    halts, saying which topic."""


@dataclass
class Batch:
    """One record batch as sent, and what each of its records carries back once durable."""

    builder: BatchBuilder
    records: list[tuple[Key, Value, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter that waits for the flush carrying its pending mark (no transactions)."""

    source: SourcePartition
    offset: int
    record: DeadLetterRecord


@dataclass(frozen=True, slots=True)
class _Unfolded:
    key: Key
    value: Value
    headers: Headers


@dataclass
class Pending:
    """Changelog writes by topic partition and key (the last one wins), dead letters in
    order: sent in the flush's transaction (`unfolded`), or after it (`letters`)."""

    writes: dict[TopicPartition, dict[Key, tuple[Value, Any]]] = field(default_factory=dict)
    unfolded: dict[TopicPartition, list[_Unfolded]] = field(default_factory=dict)
    letters: list[Letter] = field(default_factory=list)
    size: int = 0
    pruning: bool = False  # a position write here forgot an event (a fault point)

    def __bool__(self) -> bool:
        return bool(self.writes or self.unfolded or self.letters)

    def write(self, tp: TopicPartition, key: Key, value: Value, tag: Any) -> None:
        """Keep `key`'s latest write; `tag` comes back once it is durable."""
        by_key = self.writes.setdefault(tp, {})
        earlier = by_key.get(key)
        if earlier is None:
            self.size += len(key or b"")
        else:
            self.size -= len(earlier[0] or b"")
        by_key[key] = (value, tag)
        self.size += len(value or b"")

    def add_unfolded(
        self, tp: TopicPartition, key: Key, value: Value, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        self.unfolded.setdefault(tp, []).append(_Unfolded(key, value, tuple(headers)))
        self.size += len(key or b"") + len(value or b"")

    def add_letter(self, letter: Letter) -> None:
        self.letters.append(letter)
        self.size += letter.record.size

    def batches(
        self, transactional: bool, limits: dict[TopicPartition, int]
    ) -> Iterator[tuple[TopicPartition, Batch]]:
        """The record batches to send: each within its topic's limit (`limits`, else
        `MAX_BATCH_BYTES`), the broker's check of a whole batch."""
        for tp, by_key in self.writes.items():
            records: Iterator[Record] = ((k, v, tag, ()) for k, (v, tag) in by_key.items())
            yield from _batched(tp, records, transactional, limits)
        for tp, kept in self.unfolded.items():
            records = ((r.key, r.value, None, r.headers) for r in kept)
            yield from _batched(tp, records, transactional, limits)


def _batched(
    tp: TopicPartition,
    records: Iterator[Record],
    transactional: bool,
    limits: dict[TopicPartition, int],
) -> Iterator[tuple[TopicPartition, Batch]]:
    limit = limits.get(tp, MAX_BATCH_BYTES)
    refused = limits.get(tp, BROKER_MESSAGE_BYTES)
    batch: Batch | None = None
    for key, value, tag, headers in records:
        if batch is None or not _append(batch, key, value, headers):
            if batch is not None:
                yield tp, batch
            batch = Batch(BatchBuilder(limit, 0, is_transactional=int(transactional)))
            # aiokafka lets a fresh batch take one record of any size, which the broker
            # then refuses, in the middle of a transaction: refused here instead.
            if not _append(batch, key, value, headers) or batch.builder.size() > refused:
                raise RecordTooLarge(f"a {tp.topic} record fits no batch")
        batch.records.append((key, value, tag))
    if batch is not None:
        yield tp, batch


def _append(batch: Batch, key: Key, value: Value, headers: Headers) -> bool:
    appended = batch.builder.append(timestamp=None, key=key, value=value, headers=list(headers))
    return appended is not None
