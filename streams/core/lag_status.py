"""Consumer lag and its status per partition, in the spirit of Burrow's evaluation rules.

Pure: samples in, statuses out. A batching sink commits only after each batch is
published, so its offset lag saw-tooths by design: a window's worth of unconsumed events
is normal. The rules therefore look at how old the oldest unconsumed event is, measured
against the batch window, as well as at the offsets:

- OK:    no lag, or the lag is within what batching explains;
- WARN:  the lag grew over the sampling window and the oldest unconsumed event is older
         than a window (the sink is falling behind);
- REWIND: the committed offset moved backwards within the sampling window (a replay, or
         a reset): the events after it are read again, which is safe but worth knowing;
- STALL: the committed offset did not move over the sampling window while the oldest
         unconsumed event is older than two windows (the sink is stuck);
- STOP:  the oldest unconsumed event is older than the stop threshold: nothing has been
         committed past it for that long (the sink is not running).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum


class Status(IntEnum):
    """Ordered by severity: a group's status is its worst partition's."""

    OK = 0
    WARN = 1
    REWIND = 2
    STALL = 3
    STOP = 4

    @property
    def exit_code(self) -> int:
        """For monitoring probes: 0 OK, 1 WARN or REWIND, 2 STALL or STOP."""
        return {Status.OK: 0, Status.WARN: 1, Status.REWIND: 1}.get(self, 2)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # unix seconds
    committed: int | None
    high_watermark: int
    log_start: int
    oldest_timestamp_ms: int | None  # record at the committed offset, if any

    @property
    def position(self) -> int:
        """Where the group resumes: its committed offset, else the log start."""
        return self.committed if self.committed is not None else self.log_start

    @property
    def lag(self) -> int:
        return max(0, self.high_watermark - self.position)

    @property
    def oldest_age(self) -> float | None:
        """Seconds since the oldest unconsumed event was written."""
        if self.lag == 0 or self.oldest_timestamp_ms is None:
            return None
        return max(0.0, self.at - self.oldest_timestamp_ms / 1000)


@dataclass(frozen=True, slots=True)
class LagPolicy:
    warn_after: float
    stall_after: float
    stop_after: float

    @classmethod
    def for_window(cls, window_seconds: float) -> LagPolicy:
        return cls(
            warn_after=window_seconds + 30,
            stall_after=2 * window_seconds + 30,
            stop_after=max(10 * window_seconds, 600),
        )


def evaluate(history: Sequence[Sample], policy: LagPolicy) -> Status:
    """The status of one partition from its samples, oldest first."""
    last = history[-1]
    age = last.oldest_age
    if age is not None and last.lag > 0 and age >= policy.stop_after:
        return Status.STOP
    if any(_rewound(a, b) for a, b in itertools.pairwise(history)):
        return Status.REWIND
    if last.lag == 0 or age is None:
        return Status.OK
    first = history[0]
    if first.position == last.position and age >= policy.stall_after:
        return Status.STALL
    growing = all(b.lag >= a.lag for a, b in itertools.pairwise(history))
    if len(history) > 1 and growing and last.lag > first.lag and age >= policy.warn_after:
        return Status.WARN
    return Status.OK


def _rewound(before: Sample, after: Sample) -> bool:
    return (
        before.committed is not None
        and after.committed is not None
        and after.committed < before.committed
    )


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, default=Status.OK)


class LagHistory:
    """The last `size` samples of each partition: the sliding sampling window."""

    def __init__(self, size: int = 10) -> None:
        self._size = size
        self._samples: dict[tuple[str, int], deque[Sample]] = {}

    def add(self, samples: Mapping[tuple[str, int], Sample]) -> None:
        for key, sample in samples.items():
            self._samples.setdefault(key, deque(maxlen=self._size)).append(sample)

    def statuses(self, policy: LagPolicy) -> dict[tuple[str, int], Status]:
        return {key: evaluate(list(samples), policy) for key, samples in self._samples.items()}

    def latest(self) -> dict[tuple[str, int], Sample]:
        return {key: samples[-1] for key, samples in self._samples.items()}
