"""Prometheus metrics that Faust's own sensors do not cover."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge

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
    "Logged variances dead-lettered by the permission gate, by role ((none): no role given).",
    ["role"],
)
UNEXPORTED = Counter(
    "variance_sync_unexported_changes_total",
    "Logged variances applied to the inventory table but not exported (reason not synced).",
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
    "retrying (a retriable failure), parked (a failure that needs an operator).",
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
