"""What `reconcile --textfile` writes: the node-exporter textfile format, read back with
prometheus_client's own parser, and written by renaming into place."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.cli import build_parser
from streams.errors import UsageError
from streams.netsuite.books import Transaction
from streams.ops.reconcile_model import ExportedRow, KafkaSide, NetSuiteSide, Report, reconcile
from streams.ops.reconcile_textfile import gauges, render, write_atomically

TOPIC = "hotwax.inventory.variance-logged"
RAN_AT = 1_733_500_000.25
ROWS = [
    ExportedRow("VL-a", "254", "3410", -2, TOPIC, 0, 10),
    ExportedRow("VL-b", "254", "3411", 3, TOPIC, 0, 11),
]


def booked(row: ExportedRow, quantity: int) -> Transaction:
    return Transaction(
        "adjustment", row.reference, row.item, row.location, None, quantity, "", "", "f.csv"
    )


def report(*books: Transaction) -> Report:
    side = KafkaSide(rows=ROWS, committed={(TOPIC, 0): 12}, log_starts={(TOPIC, 0): 0})
    return reconcile(side, NetSuiteSide(books))


def parsed(text: str) -> dict[str, tuple[str, float]]:
    return {
        family.name: (family.type, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_agreement_writes_ok_and_no_drift() -> None:
    clean = report(booked(ROWS[0], -2), booked(ROWS[1], 3))
    figures = parsed(render(gauges(clean, RAN_AT)))
    assert figures["variance_sync_reconcile_ok"] == ("gauge", 1.0)
    assert figures["variance_sync_reconcile_drift_positions"] == ("gauge", 0.0)
    assert figures["variance_sync_reconcile_last_run_timestamp_seconds"] == ("gauge", RAN_AT)


def test_drift_writes_not_ok_with_the_positions_that_differ() -> None:
    # VL-a booked as -5 instead of -2; VL-b booked twice.
    drift = report(booked(ROWS[0], -5), booked(ROWS[1], 3), booked(ROWS[1], 3))
    figures = parsed(render(gauges(drift, RAN_AT)))
    assert figures["variance_sync_reconcile_ok"] == ("gauge", 0.0)
    assert figures["variance_sync_reconcile_drift_positions"] == ("gauge", 2.0)
    assert figures["variance_sync_reconcile_double_imports"] == ("gauge", 1.0)
    assert figures["variance_sync_reconcile_drift_units"][1] == drift.drift_units


def test_every_figure_has_help_and_type() -> None:
    text = render(gauges(report(), RAN_AT))
    for family in text_string_to_metric_families(text):
        assert f"# HELP {family.name} " in text
        assert f"# TYPE {family.name} gauge" in text


def test_the_file_is_renamed_into_place_and_replaces_the_last_result(tmp_path: Path) -> None:
    target = tmp_path / "variance_sync_reconcile.prom"
    target.write_text("stale\n", encoding="utf-8")
    text = render(gauges(report(), RAN_AT))
    write_atomically(target, text)
    assert target.read_text(encoding="utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_an_unwritable_place_is_one_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "reconcile.prom"
    with pytest.raises(UsageError, match=r"cannot write .*reconcile\.prom"):
        write_atomically(missing, "x 1\n")
    assert not missing.parent.exists()


@pytest.mark.parametrize("flag", ["--textfile", "--metrics-file"])
def test_reconcile_takes_the_textfile_path(flag: str) -> None:
    args = build_parser().parse_args(
        ["reconcile", "--netsuite-export", "export.csv", flag, "/var/lib/node/reconcile.prom"]
    )
    assert args.textfile == Path("/var/lib/node/reconcile.prom")
