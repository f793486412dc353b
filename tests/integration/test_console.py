"""The operator console in a real headless chromium, against a live broker and a worker on
RocksDB: what the page shows equals `/lag`, `/batches`, `/analytics`, `/dead-letters`
and `/rejections`, it refreshes itself, and it loads nothing from anywhere else.

The expected page is computed here from the JSON views with the page's own rules (which
rows, which bars, how a number is written), so a page that drops, reorders or miswrites a
figure fails."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from selenium.webdriver import Chrome

from schemas.models import VarianceLogged
from sinks.feeds import ADJUSTMENT
from sinks.rejections import ERROR_HEADER
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import Event, VarianceProducer
from tests.factories import count, line, stack_config, variance
from tests.faults.traffic import ExpectedAnalytics
from tests.fixtures.sites import read_only
from tests.fixtures.worker import WorkerProcess, wait_for

VARIANCE_TOPIC = "hotwax.inventory.variance-logged"
NONE = "—"
SETTINGS = """rejections_check_seconds = 1

[permissions]
roles = ["STORE_ASSOCIATE", "FACILITY_MANAGER", "ADMIN"]
log_variance_min_role = "FACILITY_MANAGER"
"""
REJECTED = "InventoryAdjustmentFeed-HAND-MADE.csv"
# Set it to refresh docs/console.png from a run of this test.
SCREENSHOT = os.environ.get("VARIANCE_SYNC_CONSOLE_SCREENSHOT")


def manager(event: VarianceLogged) -> VarianceLogged:
    return event.model_copy(update={"logged_by_role": "FACILITY_MANAGER"})


def first_traffic() -> list[Event]:
    return [
        manager(variance(-2, "VAR_DAMAGED", facility="STORE_1")),
        manager(variance(-1, "VAR_STOLEN", facility="STORE_2")),
        manager(variance(4, "VAR_FOUND", facility="STORE_1", product="10018", item="3411")),
        variance(-5, "VAR_STOLEN").model_copy(update={"logged_by_role": "STORE_ASSOCIATE"}),
        count(
            line("10017", "3410", counted=5, system=9), line("10018", "3411", counted=1, system=1)
        ),
    ]


def test_the_console_shows_what_the_worker_serves(
    tmp_path: Path, broker: LocalBroker, browser: Chrome
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n', SETTINGS)
    asyncio.run(prepare_broker(load_settings(config).kafka))
    expected = ExpectedAnalytics(ZoneInfo("America/Chicago"))
    sent = first_traffic()
    for event in sent:
        if getattr(event, "logged_by_role", "FACILITY_MANAGER") == "FACILITY_MANAGER":
            expected.fold(event)
    reject_a_file(tmp_path / "netsuite")
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish(broker.bootstrap, sent, raw=(b"not an event", b"\xc3\x01\x00")))
        wait_until_settled(worker, expected, dead_letters=3)
        browser.get(f"http://127.0.0.1:{worker.web_port}/console?refresh=1")
        wait_for(lambda: refreshes(browser) >= 1, 30, "the console's first refresh", worker)
        check_page(browser, worker)
        check_a_failing_destination(browser, worker, tmp_path / "netsuite", expected)
        more = manager(variance(-7, "VAR_LOST", facility="STORE_2"))
        expected.fold(more)
        asyncio.run(publish(broker.bootstrap, [more]))
        wait_until_settled(worker, expected, dead_letters=3)
        # The same page, not reloaded: it picked the new variance up by itself.
        wait_for(lambda: "VAR_LOST" in dict(bars(browser, "chart-reason")), 30, "a refresh", worker)
        check_page(browser, worker)
        assert_read_only_and_self_contained(browser, worker)
    finally:
        worker.stop()


def check_a_failing_destination(
    browser: Chrome, worker: WorkerProcess, root: Path, expected: ExpectedAnalytics
) -> None:
    """Batches that cannot be staged stay open and sealed, their writer retrying; the page
    shows all of it, then the recovery."""
    event = count(line("10017", "3410", counted=2, system=3), count_id="CC2002")
    expected.fold(event)
    with read_only(root / ADJUSTMENT.staging_dir):
        asyncio.run(publish(worker_bootstrap(worker), [event]))

        def stuck() -> bool:
            _, lag = worker.get("/lag")
            _, batches = worker.get("/batches")
            group = lag.get("batches", {})
            return (
                bool(group.get("open"))
                and bool(group.get("failing_writers"))
                and any(f["sealed"] for f in batches["pipeline"])
            )

        wait_for(stuck, 60, "a sealed batch and a retrying writer", worker)
        check_page(browser, worker)
        page = read_page(browser)
        assert page["writers"][0][4] == "RETRYING"
        assert page["open_batches"]
        screenshot(browser, root.parent / "console.png")
    wait_until_settled(worker, expected, dead_letters=3)


def screenshot(browser: Chrome, path: Path) -> None:
    """The whole page; also to VARIANCE_SYNC_CONSOLE_SCREENSHOT when set (the README's)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, int(height))
    browser.save_screenshot(str(path))
    if SCREENSHOT:
        shutil.copyfile(path, SCREENSHOT)


def worker_bootstrap(worker: WorkerProcess) -> str:
    return load_settings(worker.config).kafka.bootstrap


def reject_a_file(root: Path) -> None:
    """What NetSuite's script leaves for a file it could not import."""
    feed = ADJUSTMENT
    (root / feed.failed_dir).mkdir(parents=True)
    (root / feed.error_dir).mkdir(parents=True)
    (root / feed.failed_dir / REJECTED).write_text("header\nrow\n", encoding="utf-8")
    error_file = root / feed.error_dir / REJECTED.replace(".csv", "_error.csv")
    error_file.write_text(f"{','.join(ERROR_HEADER)}\n{REJECTED},Invalid item 3410\n")


async def publish(bootstrap: str, sent: list[Event], raw: tuple[bytes, ...] = ()) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        for event in sent:
            await producer.publish(event)
    producer_raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer_raw.start()
    try:
        for value in raw:
            await producer_raw.send_and_wait(VARIANCE_TOPIC, value, key=b"STORE_1")
    finally:
        await producer_raw.stop()


def wait_until_settled(
    worker: WorkerProcess, expected: ExpectedAnalytics, dead_letters: int
) -> None:
    """Every event applied and published, every offset committed, every view caught up."""

    def settled() -> bool:
        _, lag = worker.get("/lag")
        _, batches = worker.get("/batches")
        _, tally = worker.get("/dead-letters")
        _, found = worker.get("/rejections")
        _, analytics = worker.get("/analytics?by=facility,product,reason,day")
        return (
            lag.get("status") == "OK"
            and all(p["lag"] == 0 for p in lag["partitions"])
            and not lag["batches"]["open"]
            and not batches["pending"]
            and tally["dead_letters"] == dead_letters
            and bool(found["rejections"])
            and analytics == expected.report()
        )

    wait_for(settled, 90, "the worker to publish, commit and report everything", worker)


def refreshes(browser: Chrome) -> int:
    return int(browser.execute_script("return document.body.dataset.refreshes || 0"))


def check_page(browser: Chrome, worker: WorkerProcess) -> None:
    """The page after two refreshes during which the views it shows stood still (the lag
    report moves every few seconds while anything is in flight)."""
    for _ in range(5):
        views = read_views(worker)
        wait_for_refreshes(browser, worker, 2)
        page = read_page(browser)
        if read_views(worker) == views:
            assert page == expected_page(views)
            return
    raise AssertionError("the views never stood still for two refreshes of the page")


def wait_for_refreshes(browser: Chrome, worker: WorkerProcess, more: int) -> None:
    wanted = refreshes(browser) + more
    wait_for(lambda: refreshes(browser) >= wanted, 30, f"{more} refreshes of the page", worker)


def read_views(worker: WorkerProcess) -> dict[str, Any]:
    paths = {
        "lag": "/lag",
        "batches": "/batches",
        "dead_letters": "/dead-letters",
        "rejections": "/rejections",
        "by_reason": "/analytics?by=reason",
        "by_facility": "/analytics?by=facility",
        "by_day": "/analytics?by=day",
        "accuracy_by_facility": "/analytics?accuracy=1&by=facility",
        "accuracy_by_day": "/analytics?accuracy=1&by=day",
    }
    views = {}
    for name, path in paths.items():
        status, views[name] = worker.get(path)
        assert status == 200, path
    views["rejections"].pop("checked_at")  # it moves every second; not compared
    # The page shows the pipeline; the rest of /batches ticks with the clock.
    views["batches"] = {"pipeline": views["batches"]["pipeline"]}
    return views


def read_page(browser: Chrome) -> dict[str, Any]:
    def rows(selector: str) -> list[list[str]]:
        found: list[list[str]] = browser.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".filter(row => !row.querySelector('td.empty'))"
            ".map(row => [...row.cells].map(cell => cell.textContent));",
            selector,
        )
        return found

    def text(element_id: str) -> str:
        found: str = browser.execute_script(
            "return document.getElementById(arguments[0]).textContent", element_id
        )
        return found

    return {
        "group": text("group"),
        "status": text("group-status"),
        "partitions": rows("#partitions"),
        "pipeline": rows("#feeds"),
        "open_batches": rows("#open-batches"),
        "writers": rows("#writers"),
        "halted": rows("#halted"),
        "dlq_total": text("dlq-total"),
        "dlq_redriven": text("dlq-redriven"),
        "dlq_classes": rows("#dlq-classes"),
        "dlq_reasons": rows("#dlq-reasons"),
        "rejections": rows("#rejections"),
        **{chart: bars(browser, chart) for chart in CHARTS},
    }


CHARTS = (
    "chart-reason",
    "chart-facility",
    "chart-day",
    "chart-accuracy-facility",
    "chart-accuracy-day",
)


def bars(browser: Chrome, chart: str) -> list[tuple[str, float]]:
    found = browser.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' g.bar')]"
        ".map(bar => [bar.dataset.label, Number(bar.dataset.value)]);",
        chart,
    )
    return [(label, value) for label, value in found]


def expected_page(views: dict[str, Any]) -> dict[str, Any]:
    lag, batches, tally = views["lag"], views["batches"], views["dead_letters"]
    group = lag["batches"]
    return {
        "group": lag["group"],
        "status": lag["status"],
        "partitions": [
            [
                p["topic"],
                str(p["partition"]),
                number(p["committed"]),
                str(p["high_watermark"]),
                str(p["lag"]),
                seconds(p["oldest_unconsumed_age_seconds"]),
                p["status"],
            ]
            for p in lag["partitions"]
        ],
        "pipeline": [
            [
                f["feed"],
                str(f["open_batches"]),
                str(f["open_rows"]),
                str(f["sealed"]),
                str(f["published_files"]),
                str(f["published_rows"]),
                moment(group["last_publish"].get(f["feed"])),
            ]
            for f in batches["pipeline"]
        ],
        "open_batches": [
            [
                b["worker"],
                b["feed"],
                b["topic"],
                str(b["partition"]),
                str(b["rows"]),
                str(b["first_offset"]),
                seconds(b["age_seconds"]),
            ]
            for b in group["open"]
        ],
        "writers": [
            [
                w["worker"],
                w["feed"],
                w["topic"],
                str(w["partition"]),
                w["state"].upper(),
                w["error"],
            ]
            for w in group["failing_writers"]
        ],
        "halted": [
            [
                h["worker"],
                str(h["partition"]),
                number(h["offset"]),
                str(h["attempts"]),
                moment(h["since"]),
                h["reason"],
            ]
            for h in group["halted_partitions"]
        ],
        "dlq_total": str(tally["dead_letters"]),
        "dlq_redriven": str(tally["redriven"]),
        "dlq_classes": [[name, str(n)] for name, n in tally["by_class"].items()],
        "dlq_reasons": [
            [r["error_class"], r["reason"], str(r["count"])] for r in tally["by_reason"]
        ],
        "rejections": [
            [
                r["feed"],
                r["file"],
                "yes" if r["in_failed"] else "no",
                r["batch_at"][:19].replace("T", " ") + "Z" if r["batch_at"] else NONE,
                "; ".join(r["errors"]) or "(no error file)",
            ]
            for r in views["rejections"]["rejections"]
        ],
        "chart-reason": largest(views["by_reason"], "reason_id"),
        "chart-facility": largest(views["by_facility"], "facility_id"),
        "chart-day": [(r["day"], r["units"]) for r in views["by_day"]][-31:],
        "chart-accuracy-facility": [
            (r["facility_id"], r["accuracy"])
            for r in views["accuracy_by_facility"]
            if r["accuracy"] is not None
        ],
        "chart-accuracy-day": [
            (r["day"], r["accuracy"]) for r in views["accuracy_by_day"] if r["accuracy"] is not None
        ][-31:],
    }


def largest(rows: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    ordered = sorted(rows, key=lambda r: (-abs(r["units"]), r[key]))[:20]
    return [(r[key], r["units"]) for r in ordered]


def number(value: int | None) -> str:
    return NONE if value is None else str(value)


def seconds(value: float | None) -> str:
    """As JavaScript's toFixed(1): the exact binary value, a tie rounded up."""
    if value is None:
        return NONE
    return f"{Decimal(value).quantize(Decimal('0.1'), ROUND_HALF_UP)} s"


def moment(unix: float | None) -> str:
    if unix is None:
        return NONE
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def assert_read_only_and_self_contained(browser: Chrome, worker: WorkerProcess) -> None:
    origin = f"http://127.0.0.1:{worker.web_port}/"
    asked: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert asked
    assert all(url.startswith(origin) for url in asked), asked
    logged: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    problems = [entry for entry in logged if entry["level"] == "SEVERE"]
    assert not problems, problems
    status, _, headers = worker.response("/console")
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert worker.text("/console/secrets.toml")[0] == 404
    for path in ("/console", "/console/console.js", "/dead-letters", "/rejections"):
        assert worker.text(path, method="POST")[0] == 405
        assert worker.text(path, method="DELETE")[0] == 405
    metric = f'variance_sync_netsuite_rejected_files{{feed="{ADJUSTMENT.name}"}} 1.0'
    assert metric in worker.text("/metrics")[1]
