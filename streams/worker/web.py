"""Read-only HTTP views on the worker (no endpoint mutates anything)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from streams.core.analytics import ACCURACY_KEYS, KEYS, accuracy_report, facts, variance_report
from streams.core.positions import position_key

if TYPE_CHECKING:
    from streams.worker.app import Runtime


def batches_snapshot(runtime: Runtime) -> dict[str, Any]:
    """Rows waiting per feed and source partition, and the publisher's last error."""
    now = time.monotonic()
    pending = []
    for state in runtime.sources:
        for feed, batcher in state.batchers.items():
            if len(batcher):
                pending.append(
                    {
                        "feed": feed.value,
                        "topic": state.source.topic,
                        "partition": state.source.partition,
                        "rows": len(batcher),
                        "first_offset": batcher.first_offset,
                        "consumed_through": state.consumed_through,
                        "age_seconds": round(batcher.age(now), 3),
                    }
                )
    loop = runtime.publish_loop
    return {
        "pending": pending,
        "writers": [asdict(status) for status in loop.writers()],
        "last_error": loop.last_error,
    }


def readiness(runtime: Runtime) -> dict[str, bool]:
    """What an orchestrator should wait for before sending this worker traffic."""
    app = runtime.app
    loop = runtime.publish_loop
    return {
        "assigned": runtime.sources.joined,
        "recovered": not app.rebalancing and not app.in_recovery,
        "destination_reachable": loop.healthy,
        # A parked writer needs an operator: its partition's offsets cannot move.
        "no_parked_writers": not loop.parked(),
    }


def register_views(runtime: Runtime) -> None:
    app = runtime.app

    @app.page("/health")
    async def health(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        checks = readiness(runtime)
        parked = [asdict(status) for status in runtime.publish_loop.parked()]
        return self.json(
            {"ready": all(checks.values()), "checks": checks, "parked_writers": parked},
            status=200 if all(checks.values()) else 503,
        )

    @app.page("/inventory/{facility}/{product}")
    async def inventory(self: Any, request: Any, facility: str, product: str) -> Any:
        position = runtime.inventory.get(position_key(facility, product))
        if position is None:
            return self.json(
                {"error": "no position for this facility and product on this worker"}, status=404
            )
        return self.json(position)

    @app.page("/lag")
    async def lag(self: Any, request: Any) -> Any:
        return self.json(runtime.monitor.lag_json())

    @app.page("/batches")
    async def batches(self: Any, request: Any) -> Any:
        return self.json(batches_snapshot(runtime))

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
        found = list(facts(value for _, value in runtime.inventory.items()))
        report = accuracy_report if accuracy else variance_report
        return self.json(report(found, by, query.get("since"), query.get("until")))
