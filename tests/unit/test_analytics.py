"""Variance analytics from the pipeline's own positions: each distinct event once, by
facility, reason, day and product; count lines as CYCLE_COUNT, and record accuracy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas.codec import encode_avro
from streams.cli import main
from streams.core.analytics import accuracy_report, facts, variance_report
from streams.errors import UsageError
from streams.ops.report_plot import check_target, plot
from streams.producer.client import Event
from tests.factories import count, line, variance
from tests.faults.traffic import ExpectedAnalytics
from tests.unit.ingest_stage import COUNTS, VARIANCES, Stage

CHICAGO = ZoneInfo("America/Chicago")
LATE = datetime(2024, 3, 1, 4, 30, tzinfo=UTC)  # still Feb 29 in Chicago


async def test_the_report_is_the_fold_of_the_distinct_events(tmp_path: Path) -> None:
    harness = Stage(tmp_path)
    events: list[Event] = [
        variance(-2, "VAR_DAMAGED"),
        variance(3, "VAR_FOUND", at=LATE),
        variance(-1, "VAR_SAMPLE"),  # not synced to NetSuite: still analysed
        count(
            line("10017", "3410", counted=7, system=10), line("10018", "3411", counted=2, system=2)
        ),
    ]
    late = round(LATE.timestamp() * 1000)  # sent when it happened: not in the future
    for event in events:
        topic = COUNTS if event is events[-1] else VARIANCES
        await harness.send(topic, encode_avro(event), timestamp_ms=late)
    await harness.send(VARIANCES, encode_avro(events[0]))  # a producer's duplicate
    await harness.send(VARIANCES, encode_avro(events[1]), offset=1, timestamp_ms=late)  # again
    expected = ExpectedAnalytics(CHICAGO)
    for event in events:
        expected.fold(event)
    found = list(facts(harness.inventory.values()))
    by = ("facility", "product", "reason", "day")
    assert variance_report(found, by) == expected.report()
    assert accuracy_report(found, ("facility", "product", "day")) == expected.accuracy()
    assert variance_report(found, ("reason",)) == [
        {"reason_id": "CYCLE_COUNT", "units": -3, "events": 1},
        {"reason_id": "VAR_DAMAGED", "units": -2, "events": 1},
        {"reason_id": "VAR_FOUND", "units": 3, "events": 1},
        {"reason_id": "VAR_SAMPLE", "units": -1, "events": 1},
    ]
    assert accuracy_report(found, ("facility",)) == [
        {"facility_id": "STORE_1", "counted": 2, "matched": 1, "accuracy": 0.5}
    ]
    assert {row["day"] for row in variance_report(found, ("day",))} == {"2024-02-29"}
    assert variance_report(found, ("reason",), since="2024-03-01") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by", "color"], "argument --by: 'color': give distinct keys among facility"),
        (["--since", "yesterday"], "argument --since: 'yesterday' is not a day (YYYY-MM-DD)"),
        (
            ["--accuracy", "--by", "reason"],
            "--accuracy groups by facility, day, product, not reason",
        ),
    ],
)
def test_bad_report_arguments_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["report", *argv])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


ROWS = [
    {"facility_id": "STORE_1", "reason_id": "VAR_DAMAGED", "units": -4, "events": 2},
    {"facility_id": "STORE_1", "reason_id": "VAR_FOUND", "units": 3, "events": 1},
    {"facility_id": "STORE_2", "reason_id": "VAR_DAMAGED", "units": -1, "events": 1},
]


def test_plot_draws_units_by_facility_stacked_per_reason(tmp_path: Path) -> None:
    svg, png = tmp_path / "units.svg", tmp_path / "units.png"
    plot(ROWS, ("facility", "reason"), accuracy=False, path=svg)
    plot(ROWS, ("facility", "reason"), accuracy=False, path=png)
    drawn = svg.read_text(encoding="utf-8")
    for label in ("STORE_1", "STORE_2", "VAR_DAMAGED", "VAR_FOUND", "units (signed)"):
        assert label in drawn
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    rates = [{"facility_id": "STORE_1", "counted": 4, "matched": 3, "accuracy": 0.75}]
    plot(rates, ("facility",), accuracy=True, path=svg)
    assert "inventory record accuracy (%)" in svg.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["chart.pdf", "missing/chart.png"])
def test_a_bad_plot_file_is_one_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="--plot"):
        check_target(tmp_path / name)
