"""Counts of dead letters by error class and by reason, for the console and `/dead-letters`.

Each record is counted once, as `variance-sync dlq list --json` counts `dead_letters`: a
re-driven event that fails again is a second record. Reasons carry event details, so a
flood of distinct ones is bounded: past `max_reasons` distinct reasons, new ones count
under OTHER_REASONS. Re-drives are counted by the DLQ offset they name (the key of a
re-drive record), so sending one back twice counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.core.dead_letter import dead_letter_header

UNKNOWN = "unknown"
OTHER_REASONS = "(other reasons)"
MAX_REASONS = 1000


@dataclass(slots=True)
class DeadLetterTally:
    max_reasons: int = MAX_REASONS
    total: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, reason)
    redriven: set[int] = field(default_factory=set)

    def add(self, headers: Sequence[tuple[str, bytes | None]]) -> None:
        error_class = dead_letter_header(headers, "error-class") or UNKNOWN
        reason = dead_letter_header(headers, "error") or UNKNOWN
        key = (error_class, reason)
        if key not in self.by_reason and len(self.by_reason) >= self.max_reasons:
            key = (error_class, OTHER_REASONS)
        self.total += 1
        self.by_class[error_class] += 1
        self.by_reason[key] += 1

    def add_redrive(self, key: bytes | None) -> None:
        try:
            self.redriven.add(int(key or b""))
        except ValueError:
            return  # not a re-drive record that a variance-sync tool wrote

    def to_json(self, top: int = 50) -> dict[str, Any]:
        return {
            "dead_letters": self.total,
            "redriven": len(self.redriven),
            "by_class": dict(self.by_class.most_common()),
            "by_reason": [
                {"error_class": error_class, "reason": reason, "count": count}
                for (error_class, reason), count in self.by_reason.most_common(top)
            ],
            "distinct_reasons": len(self.by_reason),
        }
