"""Capped exponential backoff for publishing while the destination is unhealthy."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Decides when the next attempt may run. Pure: the caller passes `now`.

    Jitter (up to 20 %) keeps several workers from hammering a recovering server at once.
    """

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.2
    failures: int = 0
    not_before: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float) -> float:
        """Record a failure; return the delay until the next attempt."""
        self.failures += 1
        base = self.initial * 2 ** min(self.failures - 1, 30)
        spread = 1 + self.jitter * random.random()  # noqa: S311 - timing jitter, not security
        delay: float = min(self.maximum, base * spread)
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
