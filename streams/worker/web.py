"""Read-only HTTP views on the worker (no endpoint mutates anything), and `/metrics`."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sinks.feeds import FEEDS
from sinks.partition_writer import WriterStatus
from streams.core.analytics import ACCURACY_KEYS, KEYS, accuracy_report, variance_report
from streams.core.pending import SourceRegistry
from streams.core.positions import position_key
from streams.worker import console
from streams.worker.monitor import Monitor
from streams.worker.publish_loop import PublishLoop
from streams.worker.rejection_watch import RejectionWatch
from streams.worker.table_totals import report_facts
from streams.worker.tables import WrittenThroughTable


def batches_snapshot(sources: SourceRegistry, loop: PublishLoop) -> dict[str, Any]:
    """Rows waiting per feed and source partition, and the publisher's last error."""
    now = time.monotonic()
    pending = []
    for state in sources:
        for feed, batcher in state.batchers.items():
            if len(batcher):
                pending.append(
                    {
                        "feed": feed.name,
                        "topic": state.source.topic,
                        "partition": state.source.partition,
                        "rows": len(batcher),
                        "first_offset": batcher.first_offset,
                        "consumed_through": state.consumed_through,
                        "age_seconds": round(batcher.age(now), 3),
                    }
                )
    writers = loop.writers()
    return {
        "pending": pending,
        "pipeline": pipeline(pending, writers, loop),
        "writers": [asdict(status) for status in writers],
        "last_error": loop.last_error,
    }


def pipeline(
    pending: list[dict[str, Any]], writers: list[WriterStatus], loop: PublishLoop
) -> list[dict[str, Any]]:
    """Per feed, this worker's batches at each stage: open (rows waiting in memory),
    sealed (offsets and names fixed, not in csv/ yet) and published since it started."""
    return [
        {
            "feed": feed.name,
            "open_batches": sum(1 for p in pending if p["feed"] == feed.name),
            "open_rows": sum(p["rows"] for p in pending if p["feed"] == feed.name),
            "sealed": sum(1 for w in writers if w.feed == feed.name and w.sealed is not None),
            "published_files": loop.published_files[feed.name],
            "published_rows": loop.published_rows[feed.name],
            "last_publish": loop.last_publish.get(feed.name),
        }
        for feed in FEEDS
    ]


def readiness(app: faust.App, sources: SourceRegistry, loop: PublishLoop) -> dict[str, bool]:
    """What an orchestrator should wait for before sending this worker traffic."""
    return {
        "assigned": sources.joined,
        "recovered": not app.rebalancing and not app.in_recovery,
        "destination_reachable": loop.healthy,
        # A parked writer needs an operator: its partition's offsets cannot move.
        "no_parked_writers": not loop.parked(),
        # A halted partition stopped on an error carrying an event out.
        "no_halted_partitions": not sources.halts,
    }


def halted(sources: SourceRegistry) -> list[dict[str, Any]]:
    return [
        {"partition": partition, **asdict(halt)}
        for partition, halt in sorted(sources.halts.items())
    ]


def register_views(
    app: faust.App,
    *,
    sources: SourceRegistry,
    publish_loop: PublishLoop,
    inventory: WrittenThroughTable,
    monitor: Monitor,
    rejections: RejectionWatch,
) -> None:
    @app.page("/health")
    async def health(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        checks = readiness(app, sources, publish_loop)
        parked = [asdict(status) for status in publish_loop.parked()]
        body = {
            "ready": all(checks.values()),
            "checks": checks,
            "parked_writers": parked,
            "halted_partitions": halted(sources),
        }
        return self.json(body, status=200 if all(checks.values()) else 503)

    @app.page("/inventory/{facility}/{product}")
    async def position_at(self: Any, request: Any, facility: str, product: str) -> Any:
        position = inventory.get(position_key(facility, product))
        if position is None:
            return self.json(
                {"error": "no position for this facility and product on this worker"}, status=404
            )
        return self.json(position)

    @app.page("/lag")
    async def lag(self: Any, request: Any) -> Any:
        return self.json(monitor.lag_json())

    @app.page("/group")
    async def group(self: Any, request: Any) -> Any:
        """Every worker of the group, live or gone, what each holds, and the group's lag:
        built from the status topic, so every worker answers the same."""
        return self.json(monitor.group_json(time.time()))

    @app.page("/lag/history")
    async def lag_history(self: Any, request: Any) -> Any:
        """The group's lag over the last hour, one sample per bucket, from the status topic."""
        return self.json(monitor.history_json(time.time()))

    @app.page("/batches")
    async def batches(self: Any, request: Any) -> Any:
        return self.json(batches_snapshot(sources, publish_loop))

    @app.page("/analytics")
    async def analytics(self: Any, request: Any) -> Any:
        """The positions this worker holds, as `variance-sync report --format json` groups
        them: ?by=facility,reason (keys: facility, reason, day, product), ?accuracy=1,
        ?since=YYYY-MM-DD, ?until=YYYY-MM-DD."""
        query = request.query
        accuracy = query.get("accuracy") in ("1", "true")
        by = tuple(k for k in query.get("by", "facility,reason").split(",") if k)
        allowed = ACCURACY_KEYS if accuracy else tuple(KEYS)
        if not by or any(key not in allowed for key in by):
            return self.json({"error": f"by: keys among {', '.join(allowed)}"}, status=400)
        since, until = query.get("since"), query.get("until")
        # Never a fold of the table on the loop: running totals, or a read in a thread.
        found = await report_facts(inventory, by, since is not None or until is not None)
        report = accuracy_report if accuracy else variance_report
        return self.json(report(found, by, since, until))

    @app.page("/dead-letters")
    async def dead_letters(self: Any, request: Any) -> Any:
        """Dead-letter records by error class and by reason (the 50 most common)."""
        return self.json(monitor.dead_letters.tally.to_json())

    @app.page("/rejections")
    async def rejected(self: Any, request: Any) -> Any:
        """Files NetSuite moved to failed/, with its reasons from error/."""
        return self.json(rejections.to_json())

    @app.page("/console")
    async def console_page(self: Any, request: Any) -> Any:
        return _asset(self, "index.html")

    @app.page("/console/{name}")
    async def console_asset(self: Any, request: Any, name: str) -> Any:
        return _asset(self, name)


def _asset(view: Any, name: str) -> Any:
    found = console.asset(name)
    if found is None:
        return view.json({"error": "no such console file"}, status=404)
    text, content_type = found
    return view.text(text, content_type=content_type, headers=dict(console.HEADERS))


def register_metrics(app: faust.App, monitor: Monitor) -> None:
    """`/metrics` with our registry only: Faust's sensors are left out (docs/monitoring.md).
    A revoked partition's series go at once, so that its next owner is its only source."""

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def on_revoked(_app: Any, revoked: Any, **_: Any) -> None:
        monitor.forget([(tp.topic, tp.partition) for tp in revoked])

    # Faust's signal signatures are looser than mypy can see through.
    revoked_signal: Any = app.on_partitions_revoked
    revoked_signal.connect(on_revoked)
