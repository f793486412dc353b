"""Batch health snapshots that each worker publishes to the status topic.

Open batches live in worker memory, so ops tools cannot see them in offsets alone. Every
few seconds each worker writes one small JSON record (key: its worker id) with its waiting
batches and the last successful publish per feed; `variance-sync lag` and `/lag` read the
latest record per worker from that topic.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class OpenBatch:
    feed: str
    topic: str
    partition: int
    rows: int
    first_offset: int
    age_seconds: float


@dataclass(frozen=True, slots=True)
class FailingWriter:
    """A publish writer whose last attempt failed: `retrying` or `parked` (needs an operator)."""

    feed: str
    topic: str
    partition: int
    state: str
    error: str


@dataclass(frozen=True, slots=True)
class HaltedPartition:
    """A partition number that stopped because carrying an event out failed; it waits at
    `offset` and is tried again until the cause is gone."""

    partition: int
    offset: int
    reason: str
    since: float  # unix seconds
    attempts: int


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    at: float  # unix seconds
    open_batches: tuple[OpenBatch, ...] = ()
    last_publish: dict[str, float] = field(default_factory=dict)  # feed -> unix seconds
    last_error: str | None = None
    failing_writers: tuple[FailingWriter, ...] = ()
    halted_partitions: tuple[HaltedPartition, ...] = ()

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerStatus:
        raw: dict[str, Any] = json.loads(data)
        batches = tuple(OpenBatch(**batch) for batch in raw.get("open_batches", ()))
        failing = tuple(FailingWriter(**writer) for writer in raw.get("failing_writers", ()))
        halted = tuple(HaltedPartition(**halt) for halt in raw.get("halted_partitions", ()))
        return cls(
            worker=str(raw["worker"]),
            at=float(raw["at"]),
            open_batches=batches,
            last_publish={str(k): float(v) for k, v in raw.get("last_publish", {}).items()},
            last_error=raw.get("last_error"),
            failing_writers=failing,
            halted_partitions=halted,
        )


@dataclass(frozen=True, slots=True)
class BatchHealth:
    """The batch pipeline across every live worker."""

    workers: tuple[WorkerStatus, ...]
    at: float

    @property
    def open_batches(self) -> list[tuple[str, OpenBatch]]:
        return [(w.worker, b) for w in self.workers for b in w.open_batches]

    @property
    def oldest_unpublished_age(self) -> float | None:
        """Seconds since the oldest waiting row arrived, as of now (not of the snapshot)."""
        ages = [b.age_seconds + (self.at - w.at) for w in self.workers for b in w.open_batches]
        return max(ages, default=None)

    def last_publish(self, feeds: Iterable[str]) -> dict[str, float | None]:
        latest: dict[str, float | None] = dict.fromkeys(feeds)
        for status in self.workers:
            for feed, moment in status.last_publish.items():
                current = latest.get(feed)
                latest[feed] = moment if current is None else max(current, moment)
        return latest

    @property
    def errors(self) -> dict[str, str]:
        return {w.worker: w.last_error for w in self.workers if w.last_error}

    @property
    def failing_writers(self) -> list[tuple[str, FailingWriter]]:
        return [(w.worker, f) for w in self.workers for f in w.failing_writers]

    @property
    def halted_partitions(self) -> list[tuple[str, HaltedPartition]]:
        return [(w.worker, h) for w in self.workers for h in w.halted_partitions]


def latest_per_worker(
    records: Iterable[bytes], now: float, max_age: float
) -> tuple[WorkerStatus, ...]:
    """The newest snapshot of each worker that reported within `max_age` seconds."""
    newest: dict[str, WorkerStatus] = {}
    for data in records:
        try:
            status = WorkerStatus.from_bytes(data)
        except (ValueError, KeyError, TypeError):
            continue  # not ours, or from an incompatible version: ignore it
        if status.worker not in newest or status.at > newest[status.worker].at:
            newest[status.worker] = status
    return tuple(s for s in newest.values() if now - s.at <= max_age)
