from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sinks.feeds import AdjustmentRow, TransferRow
from streams.config import NetSuiteConfig
from streams.core.routing import UnroutableEvent, route_count, route_variance
from tests.factories import count, line, make_settings, variance


@pytest.fixture
def netsuite(tmp_path: Path) -> NetSuiteConfig:
    return make_settings(tmp_path).netsuite


def test_count_lines_become_adjustments_and_zero_variances_only_update_the_table(
    netsuite: NetSuiteConfig,
) -> None:
    event = count(
        line("10017", "3410", counted=7, system=10),
        line("10018", "3411", counted=5, system=5),
        line("10019", "3412", counted=9, system=4),
    )
    routed = route_count(event, netsuite)
    assert [c.quantity for c in routed.changes] == [-3, 0, 5]
    assert routed.rows == [
        AdjustmentRow(
            "CC1001-10017",
            "927",
            "3410",
            -3,
            "254",
            date(2024, 2, 29),
            "Inventory cycle count by HotWax",
            "1",
        ),
        AdjustmentRow(
            "CC1001-10019",
            "927",
            "3412",
            5,
            "254",
            date(2024, 2, 29),
            "Inventory cycle count by HotWax",
            "1",
        ),
    ]


def test_reference_starts_with_the_count_id_and_uses_oms_item_ids_when_present(
    netsuite: NetSuiteConfig,
) -> None:
    event = count(
        line(
            "10017",
            "3410",
            counted=1,
            system=2,
            inventory_item_id="II9",
            physical_inventory_id="PI4",
        )
    )
    row = route_count(event, netsuite).rows[0]
    assert isinstance(row, AdjustmentRow)
    assert row.reference_no == "CC1001-II9-PI4"
    assert row.reference_no.split("-")[0] == "CC1001"


def test_skipped_lines_of_the_newer_count_model_are_not_applied(netsuite: NetSuiteConfig) -> None:
    event = count(
        line("10017", "3410", counted=1, system=2, decision_outcome="SKIPPED"),
        line("10018", "3411", counted=4, system=2, decision_outcome="APPLIED"),
    )
    routed = route_count(event, netsuite)
    assert [c.product_id for c in routed.changes] == ["10018"]


def test_dates_are_local_to_the_retailer(netsuite: NetSuiteConfig) -> None:
    # 03:00 UTC on March 1st is still February 29th in Chicago.
    event = count(at=datetime(2024, 3, 1, 3, 0, tzinfo=UTC))
    row = route_count(event, netsuite).rows[0]
    assert isinstance(row, AdjustmentRow)
    assert row.date == date(2024, 2, 29)


def test_losses_move_from_the_store_to_the_variance_location(netsuite: NetSuiteConfig) -> None:
    event = variance(-5, "VAR_DAMAGED", description="Damaged", event_id="8f2c")
    assert route_variance(event, netsuite).rows == [
        TransferRow("VL-8f2c", "3410", 5, "254", "1099", date(2024, 2, 29), "Damaged", "1")
    ]


def test_found_stock_moves_from_the_variance_location_to_the_store(
    netsuite: NetSuiteConfig,
) -> None:
    event = variance(2, "VAR_STOLEN", event_id="back")
    row = route_variance(event, netsuite).rows[0]
    assert isinstance(row, TransferRow)
    assert (row.quantity, row.from_location_id, row.to_location_id, row.memo) == (
        2,
        "1098",
        "254",
        "VAR_STOLEN",
    )


def test_synced_reason_without_variance_location_is_an_adjustment(netsuite: NetSuiteConfig) -> None:
    event = variance(-1, "VAR_LOST", description="Lost in back room", event_id="x1")
    assert route_variance(event, netsuite).rows == [
        AdjustmentRow(
            "VL-x1", "927", "3410", -1, "254", date(2024, 2, 29), "Lost in back room", "1"
        )
    ]


def test_unsynced_reason_updates_the_table_but_is_not_exported(netsuite: NetSuiteConfig) -> None:
    routed = route_variance(variance(-2, "VAR_SAMPLE"), netsuite)
    assert routed.rows == []
    assert routed.unexported_reason == "VAR_SAMPLE"
    assert [c.quantity for c in routed.changes] == [-2]


def test_the_event_location_wins_over_the_facility_map(netsuite: NetSuiteConfig) -> None:
    row = route_variance(variance(-1, "VAR_LOST", location="999"), netsuite).rows[0]
    assert isinstance(row, AdjustmentRow)
    assert row.location_id == "999"


def test_an_unmapped_facility_without_a_location_cannot_be_routed(netsuite: NetSuiteConfig) -> None:
    with pytest.raises(UnroutableEvent, match="unknown facility 'STORE_9'"):
        route_variance(variance(-1, facility="STORE_9"), netsuite)
    with pytest.raises(UnroutableEvent):
        route_count(count(facility="STORE_9"), netsuite)
