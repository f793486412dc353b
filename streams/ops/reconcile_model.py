"""Reconciliation: does NetSuite hold what the inventory table says was exported?

Pure. Both sides are reduced to a quantity per (NetSuite location, item) at the stores:
the table's exported variance per position, and the net effect of NetSuite's imported
adjustments and transfers (a transfer to a variance location lowers the store). Each
difference gets the likeliest cause, checked in this order: rows still waiting in
`csv/`, rows in a file NetSuite put in `failed/`, a double import (a reference booked
more than once), rows not published yet, or a row missing altogether.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.netsuite.import_rules import cycle_count_id
from streams.netsuite.ledger import Transaction

Key = tuple[str, str]  # (NetSuite location, item)


def expected_from_positions(positions: Iterable[Mapping[str, Any]]) -> Counter[Key]:
    expected: Counter[Key] = Counter()
    for position in positions:
        key = (str(position["netsuite_location_id"]), str(position["netsuite_item_id"]))
        expected[key] += int(position.get("exported_variance", 0))
    return expected


def effects(transactions: Iterable[Transaction]) -> Counter[Key]:
    total: Counter[Key] = Counter()
    for transaction in transactions:
        for location, item, change in transaction.effects():
            total[(location, item)] += change
    return total


@dataclass(frozen=True, slots=True)
class Difference:
    location: str
    item: str
    expected: int
    imported: int
    cause: str

    @property
    def drift(self) -> int:
        return self.expected - self.imported


@dataclass(frozen=True)
class Report:
    matched: int
    differences: tuple[Difference, ...]
    double_imports: dict[str, int]
    unacknowledged_counts: tuple[str, ...]
    acknowledged_counts: int
    unpublished_rows: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def drift_units(self) -> int:
        return sum(abs(d.drift) for d in self.differences)

    @property
    def clean(self) -> bool:
        return not self.differences and not self.double_imports

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "matched": self.matched,
            "differences": [
                {
                    "location": d.location,
                    "item": d.item,
                    "expected": d.expected,
                    "imported": d.imported,
                    "drift": d.drift,
                    "cause": d.cause,
                }
                for d in self.differences
            ],
            "drift_positions": len(self.differences),
            "drift_units": self.drift_units,
            "double_imports": self.double_imports,
            "acknowledged_counts": self.acknowledged_counts,
            "unacknowledged_counts": list(self.unacknowledged_counts),
            "unpublished_rows": self.unpublished_rows,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class NetSuiteSide:
    imported: Sequence[Transaction]
    pending: Sequence[Transaction] = ()  # in csv/, not yet imported
    failed: Sequence[Transaction] = ()  # in failed/
    acknowledged: frozenset[str] = frozenset()  # count ids from cycle_count/ files


def reconcile(
    expected: Mapping[Key, int], netsuite: NetSuiteSide, unpublished_rows: int = 0
) -> Report:
    stores = {location for location, _ in expected}
    imported = _at(stores, effects(netsuite.imported))
    pending = _at(stores, effects(netsuite.pending))
    failed = _at(stores, effects(netsuite.failed))
    booked = Counter(t.reference for t in netsuite.imported)
    doubles = {reference: n for reference, n in booked.items() if n > 1}
    doubled_keys = {(t.location, t.item) for t in netsuite.imported if t.reference in doubles} | {
        (t.to_location, t.item)
        for t in netsuite.imported
        if t.reference in doubles and t.to_location
    }
    differences, matched = [], 0
    for key in sorted(set(expected) | set(imported)):
        want, got = expected.get(key, 0), imported.get(key, 0)
        if want == got:
            matched += 1
            continue
        evidence = _Evidence(
            want,
            got,
            pending.get(key, 0),
            failed.get(key, 0),
            key in doubled_keys,
            unpublished_rows,
        )
        cause = _cause(evidence)
        differences.append(Difference(key[0], key[1], want, got, cause))
    counts = {
        c
        for c in (cycle_count_id(t.reference) for t in netsuite.imported if t.kind == "adjustment")
        if c
    }
    return Report(
        matched=matched,
        differences=tuple(differences),
        double_imports=doubles,
        unacknowledged_counts=tuple(sorted(counts - netsuite.acknowledged)),
        acknowledged_counts=len(counts & netsuite.acknowledged),
        unpublished_rows=unpublished_rows,
    )


def _at(stores: set[str], totals: Counter[Key]) -> Counter[Key]:
    # Variance locations ("Damaged") are NetSuite's analytics, not store stock: skip them.
    return Counter({key: value for key, value in totals.items() if key[0] in stores})


@dataclass(frozen=True, slots=True)
class _Evidence:
    want: int
    got: int
    pending: int
    failed: int
    doubled: bool
    unpublished: int


# Checked in order; the first that explains the difference is reported.
_CAUSES: tuple[tuple[Callable[[_Evidence], bool], str], ...] = (
    (
        lambda e: e.pending != 0 and e.got + e.pending == e.want,
        "pending: in csv/, not imported by NetSuite yet",
    ),
    (
        lambda e: e.failed != 0 and e.got + e.failed == e.want,
        "failed: in a file NetSuite moved to failed/ (see error/)",
    ),
    (
        lambda e: e.got + e.pending + e.failed == e.want,
        "pending and failed: in csv/ and in failed/",
    ),
    (lambda e: e.doubled, "double import: a reference was booked more than once"),
    (
        lambda e: abs(e.got) > abs(e.want) and e.got * e.want >= 0,
        "extra in NetSuite: not from these events, or imported twice under other references",
    ),
    (lambda e: e.unpublished > 0, "not published yet: {unpublished} row(s) wait in open batches"),
)
_MISSING = "missing row: consumed and exported, but in no file NetSuite has or will import"


def _cause(evidence: _Evidence) -> str:
    for test, text in _CAUSES:
        if test(evidence):
            return text.format(unpublished=evidence.unpublished)
    return _MISSING
