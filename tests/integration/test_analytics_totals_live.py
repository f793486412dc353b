"""The worker's running analytics totals on a real broker and RocksDB: what `/analytics`
answers from them equals the fold of the same worker's positions (read per product, off
the loop) and the fold of the distinct events computed here, before and after a restart
on the same RocksDB folder (the totals start from the store, recovery tops them up) and
after a kill -9."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.config import load_settings
from streams.core.analytics import Fact, accuracy_report, variance_report
from streams.core.positions import COUNTED
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import Event
from tests.factories import count, line, stack_config, variance
from tests.faults.traffic import ExpectedAnalytics
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.test_report import publish

# Every query the totals answer that the console makes, and some it does not.
VARIANCE_BY = ("reason", "facility", "day", "facility,reason,day", "reason,day")
ACCURACY_BY = ("facility", "day", "facility,day")
WINDOWS = ((None, None), ("2024-02-29", "2024-02-29"), ("2024-03-01", None))
MARCH_1 = datetime(2024, 3, 1, 18, 0, tzinfo=UTC)  # in Chicago too


def first_events() -> list[Event]:
    return [
        variance(-2, "VAR_DAMAGED", facility="STORE_1"),
        variance(3, "VAR_FOUND", facility="STORE_2", product="10018", item="3411"),
        count(
            line("10017", "3410", counted=5, system=9), line("10018", "3411", counted=1, system=1)
        ),
    ]


def later_events() -> list[Event]:
    return [
        variance(-1, "VAR_DAMAGED", facility="STORE_1"),  # the same position again
        variance(-4, "VAR_STOLEN", facility="STORE_2", at=MARCH_1),
        count(line("10017", "3410", counted=9, system=9), facility="STORE_2", at=MARCH_1),
    ]


def folded(rows: list[dict[str, Any]], accuracy: bool) -> list[Fact]:
    """The per-product report rows back as facts, to group them otherwise."""
    if accuracy:
        return [
            Fact(r["facility_id"], r["product_id"], COUNTED, r["day"], r["counted"], r["matched"])
            for r in rows
        ]
    return [
        Fact(r["facility_id"], r["product_id"], r["reason_id"], r["day"], r["units"], r["events"])
        for r in rows
    ]


def agrees(worker: WorkerProcess, expected: ExpectedAnalytics) -> bool:
    """Whether every totals-answered view equals the regrouped per-product fold, and
    that fold equals the distinct events."""
    status, rows = worker.get("/analytics?by=facility,product,reason,day")
    if status != 200 or rows != expected.report():
        return False
    status, counted = worker.get("/analytics?accuracy=1&by=facility,product,day")
    if status != 200 or counted != expected.accuracy():
        return False
    views = [(by, "", variance_report, folded(rows, False)) for by in VARIANCE_BY]
    views += [(by, "accuracy=1&", accuracy_report, folded(counted, True)) for by in ACCURACY_BY]
    for by, flag, report, facts in views:
        for since, until in WINDOWS:
            window = "".join(f"&{k}={v}" for k, v in (("since", since), ("until", until)) if v)
            status, found = worker.get(f"/analytics?{flag}by={by}{window}")
            if status != 200 or found != report(facts, tuple(by.split(",")), since, until):
                return False
    return True


def test_analytics_totals_equal_the_fold_across_restarts(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    asyncio.run(prepare_broker(load_settings(config).kafka))
    expected = ExpectedAnalytics(ZoneInfo("America/Chicago"))
    log = tmp_path / "worker.log"
    worker = WorkerProcess(config, log).start()
    try:
        worker.wait_ready()
        sent = first_events()
        for event in sent:
            expected.fold(event)
        asyncio.run(publish(broker.bootstrap, sent))
        wait_for(lambda: agrees(worker, expected), 60, "the first events in /analytics", worker)
        worker.stop()
        # A new worker on the same RocksDB folder: the totals start from the store.
        worker = WorkerProcess(config, log).start()
        worker.wait_ready()
        assert agrees(worker, expected)
        later = later_events()
        for event in later:
            expected.fold(event)
        asyncio.run(publish(broker.bootstrap, later))
        wait_for(lambda: agrees(worker, expected), 60, "the later events in /analytics", worker)
        worker.kill()
        worker = WorkerProcess(config, log).start()
        worker.wait_ready()
        wait_for(lambda: agrees(worker, expected), 60, "/analytics after a kill -9", worker)
    finally:
        worker.stop()
