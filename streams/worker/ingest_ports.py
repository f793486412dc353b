"""What ingest steers, as it steers it: the group's consumer, the changelog writer and the
broker's answers about input partitions and the DLQ. The worker wires the real ones
(`streams.worker.app`); the unit tests, fakes (`tests/unit/ingest_stage.py`)."""

from __future__ import annotations

from typing import Protocol

from sinks.source_partition import SourcePartition
from streams.core.dead_letter import DeadLetterRecord, SourceRecord


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
