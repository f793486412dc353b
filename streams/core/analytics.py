"""Variance analytics: what the reasons for variance say, per facility, reason, day and
product, and the inventory record accuracy of cycle counts. Pure.

The figures live in the positions they come from (`Position.analytics`, written by
`streams.core.positions.tally`), so they are applied exactly once with the position: a
re-delivered or re-sent event changes neither, and a crash loses neither. Logged
variances count under their `reason_id`, synced to NetSuite or not; count lines with a
variance under `CYCLE_COUNT`. Days are the retailer's business days (`netsuite.timezone`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.positions import COUNTED

KEYS = {"facility": "facility_id", "reason": "reason_id", "day": "day", "product": "product_id"}
ACCURACY_KEYS = ("facility", "day", "product")


@dataclass(frozen=True, slots=True)
class Fact:
    facility_id: str
    product_id: str
    reason_id: str  # COUNTED: a count line tally, with `units` counted and `events` matched
    day: str
    units: int
    events: int


def facts(positions: Iterable[Mapping[str, Any]]) -> Iterator[Fact]:
    for position in positions:
        for key, (first, second) in (position.get("analytics") or {}).items():
            reason, _, day = str(key).partition("|")
            facility, product = position["facility_id"], position["product_id"]
            yield Fact(facility, product, reason, day, int(first), int(second))


def in_range(fact: Fact, since: str | None, until: str | None) -> bool:
    return (since is None or fact.day >= since) and (until is None or fact.day <= until)


def variance_report(
    found: Iterable[Fact], by: Sequence[str], since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Signed units and events per group of `by` (keys of KEYS), sorted by the keys."""
    groups: defaultdict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for fact in found:
        if fact.reason_id != COUNTED and in_range(fact, since, until):
            totals = groups[tuple(getattr(fact, KEYS[key]) for key in by)]
            totals[0] += fact.units
            totals[1] += fact.events
    return [
        {**dict(zip((KEYS[key] for key in by), group, strict=True)), "units": u, "events": e}
        for group, (u, e) in sorted(groups.items())
    ]


def accuracy_report(
    found: Iterable[Fact], by: Sequence[str], since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Lines counted and matched (count equal to the system quantity) per group, and the
    inventory record accuracy: matched / counted."""
    groups: defaultdict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for fact in found:
        if fact.reason_id == COUNTED and in_range(fact, since, until):
            totals = groups[tuple(getattr(fact, KEYS[key]) for key in by)]
            totals[0] += fact.units
            totals[1] += fact.events
    return [
        {
            **dict(zip((KEYS[key] for key in by), group, strict=True)),
            "counted": counted,
            "matched": matched,
            "accuracy": round(matched / counted, 4) if counted else None,
        }
        for group, (counted, matched) in sorted(groups.items())
    ]
