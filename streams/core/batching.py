"""Windowed batches: rows wait per (feed, source partition) until their window closes.

Pure and clock-free: callers pass `now` (monotonic seconds), so tests drive time.
A batch is not a set of rows but a contiguous offset range of one source partition;
see `sinks.feed_publisher` for how that range is sealed and published.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from sinks.rows import PendingRow


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    window_seconds: float
    max_rows: int


class FeedBatcher:
    """Rows of one feed from one source partition that are not yet published."""

    def __init__(self) -> None:
        self._rows: deque[PendingRow] = deque()
        self._arrivals: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def first_offset(self) -> int | None:
        return self._rows[0].offset if self._rows else None

    @property
    def opened_at(self) -> float | None:
        """When the oldest waiting row arrived (monotonic seconds), or None when empty."""
        return self._arrivals[0] if self._arrivals else None

    def add(self, rows: Iterable[PendingRow], now: float) -> None:
        for row in rows:
            if self._rows and row.offset < self._rows[-1].offset:
                raise ValueError(f"offset {row.offset} arrived after {self._rows[-1].offset}")
            self._rows.append(row)
            self._arrivals.append(now)

    def is_due(self, now: float, policy: WindowPolicy) -> bool:
        """Whether the window has passed or the rows fill a file."""
        opened_at = self.opened_at
        if opened_at is None:
            return False
        return len(self._rows) >= policy.max_rows or now - opened_at >= policy.window_seconds

    def age(self, now: float) -> float:
        opened_at = self.opened_at
        return 0.0 if opened_at is None else now - opened_at

    def rows_through(self, end: int) -> list[PendingRow]:
        """The waiting rows whose offset is at most `end`, oldest first."""
        return [row for row in self._rows if row.offset <= end]

    def drop_from(self, start: int) -> None:
        """Forget rows at or above `start`: their events will be consumed again."""
        while self._rows and self._rows[-1].offset >= start:
            self._rows.pop()
            self._arrivals.pop()

    def drop_through(self, end: int) -> int:
        """Forget rows at or below `end`: they are published or belong to someone else."""
        dropped = 0
        while self._rows and self._rows[0].offset <= end:
            self._rows.popleft()
            self._arrivals.popleft()
            dropped += 1
        return dropped
