"""The pure rules behind /metrics: bounded labels, which partitions a worker exports, and
where the publish histograms are observed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from sinks.exceptions import DestinationUnavailable
from sinks.feed_publisher import FeedPublisher, FileAttempt, PublisherOptions
from sinks.feeds import ADJUSTMENT, AdjustmentRow
from sinks.layout import ensure_layout
from sinks.local import LocalDestination
from sinks.rows import PendingRow
from sinks.seal_ledger import BatchLedger
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.config import NetSuiteConfig, PermissionsConfig
from streams.core.permissions import MISSING

NETSUITE = NetSuiteConfig(
    subsidiary_id="1",
    adjustment_account_id="927",
    timezone="UTC",
    file_prefix="acme",
    synced_reasons=("VAR_LOST", "VAR_DAMAGED"),
    local_reasons=("VAR_SAMPLE",),
    variance_locations={"VAR_DAMAGED": "1099"},
)
PERMISSIONS = PermissionsConfig(
    roles=("STORE_ASSOCIATE", "FACILITY_MANAGER"), log_variance_min_role="FACILITY_MANAGER"
)
SOURCE = SourcePartition("hotwax.inventory.count-approved", 1)
LANDED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_configured_label_values_are_kept_and_any_other_is_other() -> None:
    bounds = metrics.LabelBounds.of(NETSUITE, PERMISSIONS, no_role=MISSING)
    reasons = ("VAR_LOST", "VAR_DAMAGED", "VAR_SAMPLE", "VAR_GIFT", "x" * 99)
    assert [bounds.reason(r) for r in reasons] == [
        "VAR_LOST",
        "VAR_DAMAGED",
        "VAR_SAMPLE",
        "other",
        "other",
    ]
    assert [bounds.role(r) for r in ("FACILITY_MANAGER", MISSING, "ROOT", "")] == [
        "FACILITY_MANAGER",
        "(none)",
        "other",
        "other",
    ]


def test_without_a_permissions_section_only_a_missing_role_is_named() -> None:
    bounds = metrics.LabelBounds.of(NETSUITE, None, no_role=MISSING)
    assert (bounds.role(MISSING), bounds.role("FACILITY_MANAGER")) == ("(none)", "other")


def test_a_flood_of_producer_values_makes_one_series() -> None:
    bounds = metrics.LabelBounds.of(NETSUITE, PERMISSIONS, no_role=MISSING)
    assert {bounds.reason(f"R{n}") for n in range(10_000)} == {"other"}


def test_a_worker_exports_only_the_partitions_it_holds() -> None:
    sampled = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    held = {("a", 1), ("b", 0), ("c", 9)}  # c: held, but not sampled yet
    assert metrics.exported_partitions(sampled, held) == [("a", 1), ("b", 0)]
    assert metrics.exported_partitions(sampled, set()) == []


def test_two_workers_splitting_an_assignment_export_each_partition_once() -> None:
    sampled = [(topic, p) for topic in ("a", "b") for p in range(4)]
    first = {("a", 0), ("a", 1), ("b", 2)}
    second = set(sampled) - first
    exports = metrics.exported_partitions(sampled, first) + metrics.exported_partitions(
        sampled, second
    )
    assert sorted(exports) == sorted(sampled)


def test_series_of_partitions_no_longer_held_are_stale() -> None:
    exported = [("a", 0), ("a", 1), ("b", 0)]
    assert metrics.stale_partitions(exported, {("a", 1)}) == [("a", 0), ("b", 0)]
    assert metrics.stale_partitions(exported, set(exported)) == []


def exposition() -> str:
    return generate_latest(REGISTRY).decode()


def test_removed_partitions_leave_metrics_and_absent_ones_are_ignored() -> None:
    topic = "test-metrics.removal"
    for gauge in metrics.PARTITION_GAUGES:
        gauge.labels(topic, "3").set(7)
        gauge.labels(topic, "4").set(7)
    metrics.remove_partitions([(topic, 3), (topic, 99)])
    text = exposition()
    assert f'partition="4",topic="{topic}"' in text
    assert f'partition="3",topic="{topic}"' not in text
    metrics.remove_partitions([(topic, 4)])
    assert f'topic="{topic}"' not in exposition()


def test_event_to_csv_is_per_row_and_never_negative() -> None:
    times = [LANDED - timedelta(seconds=90), LANDED - timedelta(seconds=1), LANDED]
    assert metrics.seconds_to_csv(times, LANDED) == [90.0, 1.0, 0.0]
    # A broker clock ahead of ours.
    assert metrics.seconds_to_csv([LANDED + timedelta(seconds=5)], LANDED) == [0.0]


def pending(offset: int, age_seconds: int) -> PendingRow:
    row = AdjustmentRow(f"CC{offset}", "927", "3410", -1, "254", date(2024, 3, 1), "memo", "1")
    return PendingRow(offset, row, LANDED - timedelta(seconds=age_seconds), "CountApproved.v2")


class Ticks:
    """A timer that advances one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class RefusingUploads(LocalDestination):
    """Takes the ledger's writes, refuses every upload of a CSV file."""

    async def write(self, path: str, data: bytes) -> None:
        if path.startswith(ADJUSTMENT.staging_dir):
            raise DestinationUnavailable("the server hung up")
        await super().write(path, data)


def observed_publisher(dest: LocalDestination, seen: list[FileAttempt]) -> FeedPublisher:
    return FeedPublisher(
        ADJUSTMENT,
        SOURCE,
        dest,
        BatchLedger(dest),
        PublisherOptions(file_prefix="acme", max_rows=2),
        clock=lambda: LANDED,
        timer=Ticks(),
        observe=seen.append,
    )


async def test_each_file_reports_its_own_rows_when_it_lands(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path)
    await ensure_layout(dest)
    seen: list[FileAttempt] = []
    rows = [pending(1, 30), pending(2, 20), pending(3, 10)]
    await observed_publisher(dest, seen).flush(rows, consumed_through=3)
    assert [(a.seconds, a.landed_at) for a in seen] == [(1.0, LANDED), (1.0, LANDED)]
    assert [metrics.seconds_to_csv(a.record_times, LANDED) for a in seen] == [
        [30.0, 20.0],
        [10.0],
    ]


async def test_a_file_another_publisher_landed_reports_no_rows(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path)
    await ensure_layout(dest)
    rows = [pending(1, 30)]
    await observed_publisher(dest, []).flush(rows, consumed_through=1)
    seen: list[FileAttempt] = []
    # A second worker, which finds the same batch already in csv/: no attempt, no rows.
    await observed_publisher(dest, seen).flush(rows, consumed_through=1)
    assert seen == []


async def test_a_failed_attempt_reports_its_duration_and_no_landing(tmp_path: Path) -> None:
    dest = RefusingUploads(tmp_path)
    await ensure_layout(dest)
    seen: list[FileAttempt] = []
    with pytest.raises(DestinationUnavailable):
        await observed_publisher(dest, seen).flush([pending(1, 30)], consumed_through=1)
    assert seen == [FileAttempt(ADJUSTMENT, 1.0)]
