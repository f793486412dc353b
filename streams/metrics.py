"""The worker's Prometheus metrics, and the pure rules that keep them summable across
workers and bounded in cardinality (docs/monitoring.md lists every series and why)."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from streams.config import NetSuiteConfig, PermissionsConfig

# A label value from producer data that the config does not name.
OTHER = "other"

EVENTS = Counter(
    "variance_sync_events_total",
    "Consumed events by type and outcome (applied, redelivered, duplicate, dead-lettered, "
    "processed-before).",
    ["event_type", "outcome"],
)
DEAD_LETTERS = Counter(
    "variance_sync_dead_letters_total",
    "Events sent to the dead-letter topic, by source topic and error class.",
    ["topic", "error_class"],
)
PERMISSION_REFUSALS = Counter(
    "variance_sync_permission_refusals_total",
    "Logged variances dead-lettered by the permission gate, by role: a configured role, "
    "(none) when no role was given, other for any other.",
    ["role"],
)
UNEXPORTED = Counter(
    "variance_sync_unexported_changes_total",
    "Logged variances applied to the inventory table but not exported (reason not synced), "
    "by reason: one the config names, else other.",
    ["reason_id"],
)
ROWS_PUBLISHED = Counter(
    "variance_sync_rows_published_total", "CSV rows published to NetSuite.", ["feed"]
)
FILES_PUBLISHED = Counter(
    "variance_sync_files_published_total", "CSV files published to NetSuite.", ["feed"]
)
PUBLISH_FAILURES = Counter(
    "variance_sync_publish_failures_total",
    "Failed publish attempts, by feed and error type (the batch is kept and retried).",
    ["feed", "error"],
)
WRITERS = Gauge(
    "variance_sync_publish_writers",
    "Publish writers (one per feed and source partition) by state: idle, publishing, "
    "retrying (a retriable failure), parked (a failure that needs an operator); retrying "
    "and parked hold while their retries run.",
    ["state"],
)
LAST_PUBLISH = Gauge(
    "variance_sync_last_publish_timestamp_seconds",
    "Unix time of the last successful publish, by feed.",
    ["feed"],
)
PENDING_ROWS = Gauge(
    "variance_sync_pending_rows", "Rows consumed but not yet published, by feed.", ["feed"]
)
OLDEST_PENDING_AGE = Gauge(
    "variance_sync_oldest_pending_batch_age_seconds",
    "Age of the oldest row waiting to be published, by feed.",
    ["feed"],
)
# From seconds to a day: a row normally lands within one batch window, an outage delays it.
_LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86_400)
EVENT_TO_CSV = Histogram(
    "variance_sync_event_to_csv_seconds",
    "From an input record's broker timestamp to its row's file being in csv/, per row.",
    ["feed"],
    buckets=_LATENCY_BUCKETS,
)
PUBLISH_DURATION = Histogram(
    "variance_sync_publish_duration_seconds",
    "One publish attempt of one file (stage, verify, promote), success or failure.",
    ["feed"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Per input partition, exported only by the worker that holds it (`exported_partitions`),
# so that a sum over workers is the group's figure.
LAG = Gauge(
    "variance_sync_consumer_lag",
    "Offset lag of the group on an input partition held by this worker.",
    ["topic", "partition"],
)
LAG_SECONDS = Gauge(
    "variance_sync_consumer_lag_seconds",
    "Age of the oldest uncommitted event of an input partition held by this worker "
    "(0 without lag).",
    ["topic", "partition"],
)
STATUS = Gauge(
    "variance_sync_partition_status",
    "0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, per input partition held by this worker.",
    ["topic", "partition"],
)
PARTITION_GAUGES = (LAG, LAG_SECONDS, STATUS)

Partition = tuple[str, int]


def exported_partitions(
    sampled: Iterable[Partition], held: Collection[Partition]
) -> list[Partition]:
    """The sampled partitions this worker reports: those it holds. Every worker samples
    the whole group; exporting only its own share makes each series come from one pod."""
    return sorted(tp for tp in sampled if tp in held)


def stale_partitions(exported: Iterable[Partition], held: Collection[Partition]) -> list[Partition]:
    """Exported series of partitions this worker no longer holds: to be removed."""
    return sorted(tp for tp in exported if tp not in held)


def remove_partitions(partitions: Iterable[Partition]) -> None:
    for topic, partition in partitions:
        for gauge in PARTITION_GAUGES:
            # Absent already when the partition was revoked before its first sample.
            try:
                gauge.remove(topic, str(partition))
            except KeyError:
                continue


@dataclass(frozen=True, slots=True)
class LabelBounds:
    """The label values producer data may take: the config's, else `other`, so that a
    producer cannot create series without bound."""

    reasons: frozenset[str]
    roles: frozenset[str]

    @classmethod
    def of(
        cls, netsuite: NetSuiteConfig, permissions: PermissionsConfig | None, *, no_role: str
    ) -> LabelBounds:
        """`no_role` is the label of an event that names no role."""
        reasons = frozenset(
            (*netsuite.synced_reasons, *netsuite.local_reasons, *netsuite.variance_locations)
        )
        roles = frozenset(permissions.roles if permissions is not None else ())
        return cls(reasons, roles | {no_role})

    def reason(self, reason_id: str) -> str:
        return bounded(reason_id, self.reasons)

    def role(self, role: str) -> str:
        return bounded(role, self.roles)


def bounded(value: str, known: Collection[str]) -> str:
    return value if value in known else OTHER


def seconds_to_csv(record_times: Sequence[datetime], landed_at: datetime) -> list[float]:
    """Per row, from its source record's broker timestamp to its file landing in csv/.
    A broker clock ahead of ours would give a negative figure: it counts as 0."""
    return [max((landed_at - at).total_seconds(), 0.0) for at in record_times]


# `labels()` parses, validates and locks on every call; the ingest path counts every event,
# so it keeps each label set's child once found.


@functools.cache
def events(event_type: str, outcome: str) -> Counter:
    return EVENTS.labels(event_type, outcome)


@functools.cache
def unexported(reason_id: str) -> Counter:
    return UNEXPORTED.labels(reason_id)


NETSUITE_REJECTED = Gauge(
    "variance_sync_netsuite_rejected_files",
    "Files NetSuite moved to failed/ (or explained in error/), by feed.",
    ["feed"],
)

HALTS = Counter(
    "variance_sync_partition_halts_total",
    "Times a partition stopped because carrying an event out failed (a dead letter the "
    "DLQ refused, a changelog write that failed, a fenced producer), by partition number.",
    ["partition"],
)
HALTED = Gauge(
    "variance_sync_halted_partitions",
    "Partition numbers stopped on this worker until the cause is gone (see /ready).",
)
PAUSED = Gauge(
    "variance_sync_paused_partitions",
    "Input partitions whose consumption is paused on this worker, by cause: rows "
    "(too many rows wait to be published), changelog (too much waits for its flush), "
    "halted.",
    ["cause"],
)
LOST_OFFSETS = Counter(
    "variance_sync_offsets_lost_total",
    "Input offsets the broker deleted (retention) before they were processed.",
    ["topic", "partition"],
)
