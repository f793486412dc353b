"""The group console's view, built only from what the status topic holds.

Any worker can serve the console behind a load balancer, so the view must not depend on
which one answers: it is a pure function of the status records (each worker's snapshot,
and the group's lag samples under `HISTORY_KEY`) and of the reader's clock. Two workers
that have read the same records give the same JSON for the same `now`.

Rules, each a function of record times and the reader's clock only:
- a worker is *live* while its newest snapshot is at most `expiry` seconds old, then
  *gone* (listed, not dropped, so that a dead pod is visible), and forgotten after
  `forget_after` seconds;
- lag history keeps one sample per `step`-second bucket of the last `span` seconds: the
  earliest in its bucket, so duplicates written by workers racing for the same bucket
  collapse to the same point on every reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from streams.core.batch_status import WorkerStatus
from streams.core.lag_status import Sample

# The status topic's key for lag samples: a worker id is `host:pid`, never this.
HISTORY_KEY = b"variance-sync:lag-history"
# Workers report every 5 s: one silent for three reports is gone (killed, or cut off).
EXPIRY = 15.0
FORGET_AFTER = 3600.0
HISTORY_SPAN = 3600.0
HISTORY_STEP = 30.0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    lag: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class LagPoint:
    """The whole group's lag at one moment, as one worker sampled it."""

    at: float  # unix seconds
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    @classmethod
    def of(cls, samples: Mapping[tuple[str, int], Sample], at: float) -> LagPoint:
        partitions = tuple(
            PartitionLag(topic, partition, s.lag, _round(s.oldest_age))
            for (topic, partition), s in sorted(samples.items())
        )
        return cls(at, partitions)

    def to_bytes(self) -> bytes:
        return json.dumps({"kind": "lag-sample", **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LagPoint:
        raw: dict[str, Any] = json.loads(data)
        partitions = tuple(
            PartitionLag(
                str(p["topic"]), int(p["partition"]), int(p["lag"]), p.get("oldest_age_seconds")
            )
            for p in raw["partitions"]
        )
        return cls(float(raw["at"]), partitions)


def is_live(sent_at: float, now: float, expiry: float = EXPIRY) -> bool:
    return now - sent_at <= expiry


def bucket(at: float, step: float = HISTORY_STEP) -> int:
    return math.floor(at / step)


def sample_due(last_at: float | None, now: float, step: float = HISTORY_STEP) -> bool:
    """Whether the group still lacks a lag sample in the bucket that `now` falls in."""
    return last_at is None or bucket(last_at, step) < bucket(now, step)


def history(
    points: Iterable[LagPoint],
    now: float,
    span: float = HISTORY_SPAN,
    step: float = HISTORY_STEP,
) -> list[LagPoint]:
    """One point per bucket over the last `span` seconds, oldest first."""
    chosen: dict[int, LagPoint] = {}
    for point in points:
        if not now - span < point.at <= now:
            continue
        key = bucket(point.at, step)
        held = chosen.get(key)
        # Earliest wins; equal times are ordered by content, never by arrival.
        if held is None or (point.at, point.to_bytes()) < (held.at, held.to_bytes()):
            chosen[key] = point
    return [chosen[key] for key in sorted(chosen)]


@dataclass
class StatusRecords:
    """What the status topic said lately: each worker's newest snapshot and the lag
    samples. Fed records in topic order; records it cannot read are skipped (another
    version's, or not ours)."""

    statuses: dict[str, WorkerStatus] = field(default_factory=dict)
    points: list[LagPoint] = field(default_factory=list)

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if not value:
            return
        try:
            if key == HISTORY_KEY:
                self.points.append(LagPoint.from_bytes(value))
                return
            status = WorkerStatus.from_bytes(value)
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        held = self.statuses.get(status.worker)
        if held is None or status.at > held.at:
            self.statuses[status.worker] = status

    def prune(
        self, now: float, forget_after: float = FORGET_AFTER, span: float = HISTORY_SPAN
    ) -> None:
        """Drop what no view shows any more, so memory stays bounded."""
        self.statuses = {w: s for w, s in self.statuses.items() if now - s.at <= forget_after}
        self.points = [p for p in self.points if now - p.at < span]

    @property
    def last_point_at(self) -> float | None:
        return max((p.at for p in self.points), default=None)


def group_view(
    statuses: Iterable[WorkerStatus],
    now: float,
    expiry: float = EXPIRY,
    forget_after: float = FORGET_AFTER,
) -> dict[str, Any]:
    """Every worker seen within `forget_after` seconds, live or gone, and who holds which
    input partition. Only live workers hold partitions: a gone worker's are shown as held
    by nobody until a live worker reports them."""
    newest: dict[str, WorkerStatus] = {}
    for status in statuses:
        if status.worker not in newest or status.at > newest[status.worker].at:
            newest[status.worker] = status
    shown = sorted(
        (s for s in newest.values() if now - s.at <= forget_after), key=lambda s: s.worker
    )
    holders: dict[tuple[str, int], list[str]] = {}
    for status in shown:
        if is_live(status.at, now, expiry):
            for held in status.partitions or ():
                holders.setdefault((held.topic, held.partition), []).append(status.worker)
    return {
        "at": now,
        "expiry_seconds": expiry,
        "workers": [_worker_json(s, now, expiry) for s in shown],
        "partitions": [
            {"topic": topic, "partition": partition, "workers": workers}
            for (topic, partition), workers in sorted(holders.items())
        ],
    }


def history_json(
    points: Iterable[LagPoint],
    now: float,
    span: float = HISTORY_SPAN,
    step: float = HISTORY_STEP,
) -> dict[str, Any]:
    return {
        "at": now,
        "span_seconds": span,
        "step_seconds": step,
        "points": [
            {"at": p.at, "total_lag": p.total, "partitions": [asdict(x) for x in p.partitions]}
            for p in history(points, now, span, step)
        ],
    }


def _worker_json(status: WorkerStatus, now: float, expiry: float) -> dict[str, Any]:
    live = is_live(status.at, now, expiry)
    writers = status.writers
    return {
        "worker": status.worker,
        "state": "live" if live else "gone",
        "last_seen": status.at,
        "age_seconds": _round(max(0.0, now - status.at)),
        "web": status.web,
        # None: a worker of an older version, which does not say.
        "partitions": None
        if status.partitions is None
        else [asdict(p) for p in sorted(status.partitions, key=lambda p: (p.topic, p.partition))],
        "open_batches": [asdict(b) for b in status.open_batches],
        "writers": None if writers is None else [asdict(w) for w in writers],
        "failing_writers": [asdict(f) for f in status.failing_writers],
        "halted_partitions": [asdict(h) for h in status.halted_partitions],
        "dead_letters": None if status.dead_letters is None else asdict(status.dead_letters),
        "last_publish": status.last_publish,
        "last_error": status.last_error,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
