"""`variance-sync reconcile --textfile`: its result for node-exporter's textfile collector.

The collector reads every `*.prom` file of its folder at each scrape, so the file is
written under another name beside it and renamed into place: a scrape sees the old
result or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from streams.errors import UsageError
from streams.ops.reconcile_model import Cause, Report

Gauge = tuple[str, str, float]  # (name, help, value)


def gauges(report: Report, now: float) -> list[Gauge]:
    """The figures of one run; `now` is when it ran (Unix time)."""
    return [
        (
            "variance_sync_reconcile_ok",
            "1 when NetSuite and variance-sync agree, 0 on drift.",
            1 if report.clean else 0,
        ),
        (
            "variance_sync_reconcile_drift_positions",
            "Store positions with a difference that no change in flight explains.",
            report.drift_positions,
        ),
        (
            "variance_sync_reconcile_drift_units",
            "Sum of absolute differences, in units.",
            report.drift_units,
        ),
        (
            "variance_sync_reconcile_double_imports",
            "References booked more than once.",
            sum(f.cause is Cause.IMPORTED_TWICE for f in report.findings),
        ),
        (
            "variance_sync_reconcile_in_flight_rows",
            "Rows on their way: in variance-sync or in csv/.",
            sum(report.in_flight.values()),
        ),
        ("variance_sync_reconcile_last_run_timestamp_seconds", "When reconcile last ran.", now),
    ]


def render(figures: list[Gauge]) -> str:
    """The Prometheus text exposition format, every figure a gauge."""
    lines = []
    for name, text, value in figures:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {float(value)!r}"]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    # Not `*.prom`: the collector must not read the temporary file either.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
