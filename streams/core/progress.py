"""Per source partition: how far it is fully processed, and which events are dead-lettered.

One record per input partition, in the changelog-backed `progress` table:

- `floor`: every event below this offset is fully processed: applied to the table (or
  ignored as a duplicate), its rows published, its dead letter written, and acked. An
  event below the floor is therefore never looked at again, however it comes back (a
  rebalance, a crash, a replay): no table write, no row, no dead letter. The floor is
  the partition's low-water mark after a release (`streams.core.pending`), written now and
  then; an older floor is still true, so it needs no ordering with anything else.
- `dead_letters`: for events at or above the floor that were rejected, where their dead
  letter is. Where the broker has transactions, the dead letter and `{"sent": true}` are
  written in one transaction, so they exist together or not at all. Elsewhere (Tansu),
  `{"pending_from": N}` while it is being sent: the entry is made durable *before* the
  send, so a successor that finds it pending looks for the record in the DLQ from offset N
  on, and sends it only if it is not there; then `{"dlq_offset": N}`. So each source event
  is dead-lettered at most once.

Pure: `streams.worker.changelog_writer` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sinks.source_partition import SourcePartition


def progress_key(source: SourcePartition) -> str:
    return f"{source.topic}:{source.partition}"


@dataclass(frozen=True, slots=True)
class DeadLetterMark:
    dlq_offset: int | None = None  # where the DLQ holds it, once acknowledged
    pending_from: int | None = None  # while sending: the DLQ held nothing of it below this
    with_transaction: bool = False  # written in the same transaction as this mark

    @property
    def sent(self) -> bool:
        return self.dlq_offset is not None or self.with_transaction

    def to_json(self) -> dict[str, int | bool]:
        if self.dlq_offset is not None:
            return {"dlq_offset": self.dlq_offset}
        if self.with_transaction:
            return {"sent": True}
        return {"pending_from": self.pending_from or 0}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeadLetterMark:
        return cls(data.get("dlq_offset"), data.get("pending_from"), bool(data.get("sent")))


@dataclass
class Progress:
    floor: int = 0
    dead_letters: dict[int, DeadLetterMark] = field(default_factory=dict)

    def processed(self, offset: int) -> bool:
        """Whether the event at `offset` is done for good (below the floor)."""
        return offset < self.floor

    def advance(self, floor: int) -> bool:
        """Raise the floor (never lower it); forget dead letters below it. True if it rose."""
        if floor <= self.floor:
            return False
        self.floor = floor
        self.dead_letters = {o: m for o, m in self.dead_letters.items() if o >= floor}
        return True

    def highest_dlq_offset(self) -> int:
        offsets = [m.dlq_offset for m in self.dead_letters.values() if m.dlq_offset is not None]
        return max(offsets, default=-1)

    def to_json(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "dead_letters": {str(o): m.to_json() for o, m in sorted(self.dead_letters.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        marks = {
            int(offset): DeadLetterMark.from_json(mark)
            for offset, mark in data.get("dead_letters", {}).items()
        }
        return cls(int(data.get("floor", 0)), marks)
