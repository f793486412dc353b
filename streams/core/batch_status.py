"""Batch health snapshots that each worker publishes to the status topic.

Open batches live in worker memory, so ops tools cannot see them in offsets alone. Every
few seconds each worker writes one small JSON record (key: its worker id) with its waiting
batches and the last successful publish per feed; `variance-sync lag` and `/lag` read the
latest record per worker from that topic. The record also carries what the group console
needs (`streams.core.group_view`): the partitions the worker holds, every publish writer,
its dead-letter tally and its web address.

Workers of different versions share the topic during a rolling upgrade, so a reader takes
what it knows from a record: a field an older worker did not write gets its default, and a
field a newer one added is ignored.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def web_address(host: str, port: int) -> str:
    """Where others can reach a worker's views: a wildcard bind address names no host,
    so the machine's name stands in for it (a pod's name in Kubernetes)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - compared, never bound
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


@dataclass(frozen=True, slots=True, order=True)
class HeldPartition:
    """An input partition assigned to the worker."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class WriterSnapshot:
    """Any publish writer, healthy or not: `state` is the writer's own word for it."""

    feed: str
    topic: str
    partition: int
    state: str
    error: str | None = None
    sealed: tuple[int, int] | None = None  # a sealed batch's offsets, not yet published


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    """The dead letters the worker has counted in the DLQ topic, by error class."""

    total: int = 0
    redriven: int = 0
    by_class: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    at: float  # unix seconds, when the worker sent it
    open_batches: tuple[OpenBatch, ...] = ()
    last_publish: dict[str, float] = field(default_factory=dict)  # feed -> unix seconds
    last_error: str | None = None
    failing_writers: tuple[FailingWriter, ...] = ()
    halted_partitions: tuple[HaltedPartition, ...] = ()
    # Since the group console; None where a worker of an older version sent the record.
    partitions: tuple[HeldPartition, ...] | None = None
    writers: tuple[WriterSnapshot, ...] | None = None
    dead_letters: DeadLetterSummary | None = None
    web: str | None = None  # host:port of its HTTP views, when configured

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerStatus:
        raw: dict[str, Any] = json.loads(data)
        letters = raw.get("dead_letters")
        return cls(
            worker=str(raw["worker"]),
            at=float(raw["at"]),
            open_batches=_many(OpenBatch, raw.get("open_batches")),
            last_publish={str(k): float(v) for k, v in raw.get("last_publish", {}).items()},
            last_error=raw.get("last_error"),
            failing_writers=_many(FailingWriter, raw.get("failing_writers")),
            halted_partitions=_many(HaltedPartition, raw.get("halted_partitions")),
            partitions=_optional(HeldPartition, raw.get("partitions")),
            writers=_writers(raw.get("writers")),
            dead_letters=None if letters is None else _known(DeadLetterSummary, letters),
            web=raw.get("web"),
        )


def _known(kind: type[T], raw: dict[str, Any]) -> T:
    """`kind` from the fields it knows: a newer writer's extra fields are dropped."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{key: value for key, value in raw.items() if key in names})


def _many(kind: type[T], raw: list[dict[str, Any]] | None) -> tuple[T, ...]:
    return tuple(_known(kind, item) for item in raw or ())


def _optional(kind: type[T], raw: list[dict[str, Any]] | None) -> tuple[T, ...] | None:
    return None if raw is None else _many(kind, raw)


def _writers(raw: list[dict[str, Any]] | None) -> tuple[WriterSnapshot, ...] | None:
    found = _optional(WriterSnapshot, raw)
    if found is None:
        return None
    # JSON has no tuples: the sealed offsets come back as a list.
    return tuple(
        WriterSnapshot(w.feed, w.topic, w.partition, w.state, w.error, _pair(w.sealed))
        for w in found
    )


def _pair(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


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
