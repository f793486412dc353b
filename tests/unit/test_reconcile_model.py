"""Reconciliation row by row: every change in flight is accounted for, never reported;
every real difference is named with its reference and cause."""

from __future__ import annotations

import pytest

from sinks.feeds import ADJUSTMENT
from sinks.naming import batch_file_name
from sinks.source_partition import SourcePartition
from streams.netsuite.books import Transaction
from streams.ops.reconcile_model import (
    Cause,
    ExportedRow,
    InFlight,
    KafkaSide,
    NetSuiteSide,
    reconcile,
    unbooked_archived,
)
from tests.factories import NOON_UTC

TOPIC = "hotwax.inventory.variance-logged"
COUNTS = "hotwax.inventory.count-approved"


def file_of(topic: str, partition: int, start: int, end: int) -> str:
    source = SourcePartition(topic, partition)
    return batch_file_name("acme", ADJUSTMENT, NOON_UTC, source, start, end)


def row(reference: str, quantity: int, offset: int, *, item: str = "3410") -> ExportedRow:
    return ExportedRow(reference, "254", item, quantity, TOPIC, 0, offset)


def booked(exported: ExportedRow, quantity: int | None = None, file: str = "") -> Transaction:
    return Transaction(
        "adjustment",
        exported.reference,
        exported.item,
        exported.location,
        None,
        exported.quantity if quantity is None else quantity,
        "02/29/2024",
        "m",
        file or file_of(TOPIC, 0, exported.offset, exported.offset),
    )


ROWS = [row("VL-a", -2, 10), row("VL-b", 3, 11, item="3411"), row("VL-c", -1, 12)]


def kafka(committed: int | None = 13, rows: list[ExportedRow] = ROWS) -> KafkaSide:
    return KafkaSide(rows=rows, committed={(TOPIC, 0): committed}, log_starts={(TOPIC, 0): 0})


def test_books_that_hold_every_row_once_are_clean() -> None:
    report = reconcile(kafka(), NetSuiteSide([booked(r) for r in ROWS]))
    assert report.clean
    assert (report.positions, report.matched, report.drift_positions) == (2, 2, 0)
    assert report.to_json()["in_flight"] == {"in_csv": 0, "in_variance_sync": 0, "after_export": 0}


def test_rows_in_flight_are_counted_never_reported() -> None:
    # VL-a imported, VL-b in csv/, VL-c not committed yet: in an open or sealed batch.
    side = NetSuiteSide([booked(ROWS[0])], pending=[booked(ROWS[1])])
    report = reconcile(kafka(committed=12), side)
    assert report.clean
    assert report.in_flight == {InFlight.IN_CSV: 1, InFlight.IN_VARIANCE_SYNC: 1}
    # A group that never committed: everything not found is still in variance-sync.
    assert reconcile(kafka(committed=None), NetSuiteSide([])).in_flight == {
        InFlight.IN_VARIANCE_SYNC: 3
    }


def test_a_published_row_that_netsuite_lacks_is_missing_with_its_reference() -> None:
    archived = file_of(TOPIC, 0, 10, 12)
    side = NetSuiteSide([booked(ROWS[1]), booked(ROWS[2])], archived=frozenset({archived}))
    (finding,) = reconcile(kafka(), side).findings
    assert (finding.cause, finding.reference, finding.exported, finding.booked) == (
        Cause.MISSING,
        "VL-a",
        -2,
        0,
    )
    assert finding.detail == f"its file archive/{archived} was imported, yet the books lack the row"
    (nowhere,) = reconcile(kafka(), NetSuiteSide([booked(ROWS[1]), booked(ROWS[2])])).findings
    assert nowhere.detail.startswith("published (its offset is committed), yet in no NetSuite")


def test_a_rejected_file_names_netsuites_reason() -> None:
    rejected = booked(ROWS[0], file="acme_bad.csv")
    side = NetSuiteSide(
        [booked(r) for r in ROWS[1:]],
        failed=[rejected],
        errors={"acme_bad.csv": "Invalid item 3410"},
    )
    (finding,) = reconcile(kafka(committed=None), side).findings
    assert (finding.cause, finding.reference) == (Cause.REJECTED, "VL-a")
    assert finding.detail == "in failed/acme_bad.csv: Invalid item 3410"


def test_a_row_booked_twice_is_imported_twice() -> None:
    side = NetSuiteSide([*(booked(r) for r in ROWS), booked(ROWS[2], file="again.csv")])
    report = reconcile(kafka(), side)
    (finding,) = report.findings
    assert (finding.cause, finding.reference, finding.exported, finding.booked) == (
        Cause.IMPORTED_TWICE,
        "VL-c",
        -1,
        -2,
    )
    assert "booked 2 times, exported 1" in finding.detail
    assert report.to_json()["drift_positions"] == 1


def test_changes_made_in_netsuite_are_changed_outside() -> None:
    manual = Transaction("adjustment", "ADJ-77", "3410", "254", None, 5, "", "", "")
    side = NetSuiteSide([booked(ROWS[0], quantity=-4), *(booked(r) for r in ROWS[1:]), manual])
    findings = reconcile(kafka(), side).findings
    assert [(f.cause, f.reference, f.exported, f.booked) for f in findings] == [
        (Cause.CHANGED_OUTSIDE, "ADJ-77", 0, 5),
        (Cause.CHANGED_OUTSIDE, "VL-a", -2, -4),
    ]


def test_books_from_events_past_retention_are_not_compared() -> None:
    old = Transaction(
        "adjustment", "VL-old", "3410", "254", None, -1, "", "", file_of(TOPIC, 0, 3, 4)
    )
    side = NetSuiteSide([*(booked(r) for r in ROWS), old])
    side_kafka = KafkaSide(ROWS, {(TOPIC, 0): 13}, log_starts={(TOPIC, 0): 10})
    report = reconcile(side_kafka, side)
    assert report.clean
    assert report.older_than_retention == 1


@pytest.mark.parametrize("pending", [True, False])
def test_a_row_both_in_csv_and_failed_waits_for_import(pending: bool) -> None:
    # A fixed file dropped into csv/ again after a rejection will be imported.
    side = NetSuiteSide(
        [booked(r) for r in ROWS[1:]],
        pending=[booked(ROWS[0])] if pending else [],
        failed=[booked(ROWS[0], file="f.csv")],
    )
    report = reconcile(kafka(), side)
    assert report.clean is pending


def test_cycle_counts_are_acknowledged_by_count_id() -> None:
    count_row = ExportedRow("CC1-10017", "254", "3410", -3, COUNTS, 0, 5)
    rows = [*ROWS, count_row]
    side_kafka = KafkaSide(rows, {(TOPIC, 0): 13, (COUNTS, 0): 6})
    imported = [booked(r) for r in rows]
    report = reconcile(side_kafka, NetSuiteSide(imported, acknowledged=frozenset({"CC1"})))
    assert (report.acknowledged_counts, report.unacknowledged_counts) == (1, ())
    report = reconcile(side_kafka, NetSuiteSide(imported))
    assert report.unacknowledged_counts == ("CC1",)


def test_with_an_export_rows_imported_after_it_was_taken_are_in_flight() -> None:
    # VL-a and VL-c sit in one archived file that NetSuite may have imported after the
    # export was taken; VL-b's file was imported long before, so its absence is drift.
    late, early = file_of(TOPIC, 0, 10, 10), file_of(TOPIC, 0, 11, 12)
    archived = frozenset({late, early})
    export = NetSuiteSide([booked(ROWS[2])], archived=archived)
    assert unbooked_archived(ROWS, export.imported, archived) == {late, early}
    side = NetSuiteSide(
        [booked(ROWS[2])], archived=archived, imported_after_export=frozenset({late})
    )
    report = reconcile(kafka(), side)
    assert report.in_flight == {InFlight.AFTER_EXPORT: 1}
    assert [(f.cause, f.reference) for f in report.findings] == [(Cause.MISSING, "VL-b")]
