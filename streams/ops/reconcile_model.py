"""Reconciliation, pure: does NetSuite hold every row variance-sync exported, once?

Row by row, by reference (Reference No / External Id, with location and item). The
expected rows are the input topics folded with the worker's own pipeline: what the
inventory table holds, with each row's reference and source offset. Every expected row
is in one place, looked for in this order:
- NetSuite's books: imported (booked twice is a difference, as is another quantity);
- `csv/`: published, not imported yet (in flight);
- `failed/`: rejected by NetSuite, with the reason from `error/` (a difference);
- still in variance-sync, when its offset is not committed yet: an open batch, or a
  sealed one being published (in flight; offsets move only after publishing);
- nowhere: a published row NetSuite lacks (a difference).
A booked row that no expected row explains was changed outside variance-sync, unless its
file comes from offsets the input topics no longer hold (retention).

The caller reads the group's committed offsets first, then `csv/`, then `failed/`, then
the books, then folds the inputs to their end. Files only move from `csv/` to the books
(booked before the move) or to `failed/`, so a row moving on between two reads is seen
at least once, and a row committed before the first read is published and so found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sinks.feeds import FeedRow
from sinks.naming import parse_batch_file_name
from sinks.source_partition import SourcePartition
from streams.netsuite.books import Transaction
from streams.netsuite.import_rules import cycle_count_id

Key = tuple[str, str]  # (NetSuite location, item)
Identity = tuple[str, str, str]  # (reference, location, item)
Source = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, slots=True)
class ExportedRow:
    """A row the worker exports, as NetSuite books it, and the event it came from."""

    reference: str
    location: str  # the adjusted location, or the transfer's From Location
    item: str
    quantity: int  # signed for adjustments, positive for transfers
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, row: FeedRow, topic: str, partition: int, offset: int) -> ExportedRow:
        return cls(
            row.reference, row.booked_location, row.item_id, row.quantity, topic, partition, offset
        )

    @property
    def identity(self) -> Identity:
        return (self.reference, self.location, self.item)


class Cause(StrEnum):
    MISSING = "missing"
    REJECTED = "rejected"
    IMPORTED_TWICE = "imported twice"
    CHANGED_OUTSIDE = "changed outside variance-sync"


class InFlight(StrEnum):
    IN_CSV = "in csv/, not imported yet"
    IN_VARIANCE_SYNC = "in variance-sync: an open batch, or a sealed one being published"
    AFTER_EXPORT = "in archive/, imported after the NetSuite export was taken"


@dataclass(frozen=True, slots=True)
class Finding:
    cause: Cause
    reference: str
    location: str
    item: str
    exported: int  # the quantity variance-sync exported (0: none)
    booked: int  # the quantity in NetSuite's books (0: none)
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause.value,
            "reference": self.reference,
            "location": self.location,
            "item": self.item,
            "exported": self.exported,
            "booked": self.booked,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class NetSuiteSide:
    imported: Sequence[Transaction]
    pending: Sequence[Transaction] = ()  # in csv/
    failed: Sequence[Transaction] = ()  # in failed/
    errors: Mapping[str, str] = field(default_factory=dict)  # failed/ file -> error/ reason
    archived: frozenset[str] = frozenset()  # file names in archive/
    acknowledged: frozenset[str] = frozenset()  # count ids from cycle_count/ files
    # With an export (a snapshot), the archived files that NetSuite may have imported
    # after it was taken: their rows are in flight, not missing.
    imported_after_export: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KafkaSide:
    rows: Sequence[ExportedRow]
    committed: Mapping[Source, int | None]
    log_starts: Mapping[Source, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    positions: int
    findings: tuple[Finding, ...]
    in_flight: Mapping[InFlight, int]
    imported_rows: int
    older_than_retention: int
    unacknowledged_counts: tuple[str, ...]
    acknowledged_counts: int

    @property
    def drift_positions(self) -> int:
        return len({(f.location, f.item) for f in self.findings})

    @property
    def drift_units(self) -> int:
        return sum(abs(f.exported - f.booked) or 1 for f in self.findings)

    @property
    def matched(self) -> int:
        return self.positions - self.drift_positions

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "positions": self.positions,
            "matched": self.matched,
            "drift_positions": self.drift_positions,
            "drift_units": self.drift_units,
            "findings": [finding.to_json() for finding in self.findings],
            "in_flight": {stage.name.lower(): self.in_flight.get(stage, 0) for stage in InFlight},
            "imported_rows": self.imported_rows,
            "older_than_retention": self.older_than_retention,
            "acknowledged_counts": self.acknowledged_counts,
            "unacknowledged_counts": list(self.unacknowledged_counts),
        }


def reconcile(kafka: KafkaSide, netsuite: NetSuiteSide) -> Report:
    booked = _by_identity(netsuite.imported)
    expected: defaultdict[Identity, list[ExportedRow]] = defaultdict(list)
    for row in kafka.rows:
        expected[row.identity].append(row)
    where = _Places(netsuite, kafka.committed)
    findings: list[Finding] = []
    in_flight: Counter[InFlight] = Counter()
    for identity, rows in expected.items():
        books = booked.pop(identity, [])
        findings += _compare_booked(rows, books)
        for row in rows[len(books) :]:
            place = where.of(row)
            if isinstance(place, InFlight):
                in_flight[place] += 1
            else:
                findings.append(place)
    outside, old = _unexplained(booked, kafka.log_starts)
    findings += outside
    positions = {(r.location, r.item) for r in kafka.rows} | {
        (t.location, t.item) for t in netsuite.imported
    }
    counts = {
        c
        for c in (cycle_count_id(t.reference) for t in netsuite.imported if t.kind == "adjustment")
        if c
    }
    return Report(
        positions=len(positions),
        findings=tuple(sorted(findings, key=lambda f: (f.location, f.item, f.reference))),
        in_flight=dict(in_flight),
        imported_rows=len(netsuite.imported),
        older_than_retention=old,
        unacknowledged_counts=tuple(sorted(counts - netsuite.acknowledged)),
        acknowledged_counts=len(counts & netsuite.acknowledged),
    )


def _by_identity(transactions: Iterable[Transaction]) -> dict[Identity, list[Transaction]]:
    found: defaultdict[Identity, list[Transaction]] = defaultdict(list)
    for t in transactions:
        found[(t.reference, t.location, t.item)].append(t)
    return found


def _compare_booked(rows: Sequence[ExportedRow], books: Sequence[Transaction]) -> list[Finding]:
    first = rows[0]
    found = [
        Finding(
            Cause.CHANGED_OUTSIDE,
            row.reference,
            row.location,
            row.item,
            row.quantity,
            book.quantity,
            f"booked as {book.quantity}, exported as {row.quantity} (file {book.file})",
        )
        for row, book in zip(rows, books, strict=False)
        if book.quantity != row.quantity
    ]
    if len(books) > len(rows):
        files = ", ".join(sorted({book.file for book in books}))
        found.append(
            Finding(
                Cause.IMPORTED_TWICE,
                first.reference,
                first.location,
                first.item,
                sum(row.quantity for row in rows),
                sum(book.quantity for book in books),
                f"booked {len(books)} times, exported {len(rows)} (files {files})",
            )
        )
    return found


class _Places:
    """Where an expected row that NetSuite has not booked is."""

    def __init__(self, netsuite: NetSuiteSide, committed: Mapping[Source, int | None]) -> None:
        self._pending = set(_by_identity(netsuite.pending))
        self._failed = _by_identity(netsuite.failed)
        self._errors = netsuite.errors
        self._archived = netsuite.archived
        self._after_export = netsuite.imported_after_export
        self._committed = committed

    def of(self, row: ExportedRow) -> InFlight | Finding:
        if row.identity in self._pending:
            return InFlight.IN_CSV
        if row.identity in self._failed:
            file = self._failed[row.identity][0].file
            reason = self._errors.get(file, "no error file found")
            return self._finding(row, Cause.REJECTED, f"in failed/{file}: {reason}")
        committed = self._committed.get((row.topic, row.partition))
        if committed is None or row.offset >= committed:
            return InFlight.IN_VARIANCE_SYNC
        archived = archived_file_of(row, self._archived)
        if archived is not None and archived in self._after_export:
            return InFlight.AFTER_EXPORT
        if archived is not None:
            detail = f"its file archive/{archived} was imported, yet the books lack the row"
            return self._finding(row, Cause.MISSING, detail)
        detail = "published (its offset is committed), yet in no NetSuite folder or book"
        return self._finding(row, Cause.MISSING, detail)

    @staticmethod
    def _finding(row: ExportedRow, cause: Cause, detail: str) -> Finding:
        return Finding(cause, row.reference, row.location, row.item, row.quantity, 0, detail)


def archived_file_of(row: ExportedRow, archived: Iterable[str]) -> str | None:
    """The file in archive/ whose offsets hold `row`, if any."""
    tag = SourcePartition(row.topic, row.partition).tag
    for name in sorted(archived):
        parsed = parse_batch_file_name(name)
        if (
            parsed is not None
            and (parsed.topic_tag, parsed.partition) == (tag, row.partition)
            and parsed.start <= row.offset <= parsed.end
        ):
            return name
    return None


def unbooked_archived(
    rows: Sequence[ExportedRow], imported: Sequence[Transaction], archived: Iterable[str]
) -> set[str]:
    """The archived files holding exported rows that the books lack: with an export, the
    ones whose publishing time says whether they could be in it."""
    booked = {(t.reference, t.location, t.item) for t in imported}
    kept = sorted(archived)
    return {
        name
        for row in rows
        if row.identity not in booked and (name := archived_file_of(row, kept)) is not None
    }


def _unexplained(
    booked: Mapping[Identity, Sequence[Transaction]], log_starts: Mapping[Source, int]
) -> tuple[list[Finding], int]:
    """Booked rows that no exported row explains, and how many of them come from offsets
    that the input topics no longer hold (not compared: the fold cannot see them)."""
    starts = {(SourcePartition(t, p).tag, p): start for (t, p), start in log_starts.items()}
    findings, old = [], 0
    for (reference, location, item), books in booked.items():
        for book in books:
            parsed = parse_batch_file_name(book.file)
            start = starts.get((parsed.topic_tag, parsed.partition)) if parsed else None
            if parsed is not None and start is not None and parsed.start < start:
                old += 1
                continue
            findings.append(
                Finding(
                    Cause.CHANGED_OUTSIDE,
                    reference,
                    location,
                    item,
                    0,
                    book.quantity,
                    f"booked in NetSuite ({book.file or 'no file'}), not exported by variance-sync",
                )
            )
    return findings, old
