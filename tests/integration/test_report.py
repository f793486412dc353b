"""`variance-sync report` and the worker's `/analytics` on a real broker, a worker on
RocksDB: both equal a fold of the distinct events computed here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.cli import main
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.producer.client import Event, VarianceProducer
from tests.factories import count, line, stack_config, variance
from tests.faults.traffic import ExpectedAnalytics
from tests.fixtures.worker import WorkerProcess, wait_for

BY = "facility,product,reason,day"


def events() -> list[Event]:
    found: list[Event] = [
        variance(-2, "VAR_DAMAGED", facility="STORE_1"),
        variance(-1, "VAR_STOLEN", facility="STORE_2"),
        variance(4, "VAR_FOUND", facility="STORE_1", product="10018", item="3411"),
        variance(-1, "VAR_SAMPLE", facility="STORE_2"),
        count(
            line("10017", "3410", counted=5, system=9), line("10018", "3411", counted=1, system=1)
        ),
    ]
    return [*found, found[0], found[4]]  # producers' duplicates


def report(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> str:
    assert main(["report", "--config", str(config), *argv]) == 0
    return capsys.readouterr().out


def test_report_and_analytics_equal_the_distinct_events(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    asyncio.run(prepare_broker(load_settings(config).kafka))
    sent = events()
    expected = ExpectedAnalytics(ZoneInfo("America/Chicago"))
    for event in sent:
        expected.fold(event)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish(broker.bootstrap, sent))

        def served() -> bool:
            status, found = worker.get(f"/analytics?by={BY}")
            return status == 200 and found == expected.report()

        wait_for(served, 60, "/analytics to show every event", worker)
        wait_for(
            lambda: json.loads(report(capsys, config, "--json", "--by", BY)) == expected.report(),
            60,
            "the changelog to hold every event",
            worker,
        )
        status, accuracy = worker.get("/analytics?accuracy=1&by=facility,product,day")
        assert (status, accuracy) == (200, expected.accuracy())
        assert worker.get("/analytics?by=color")[0] == 400
    finally:
        worker.stop()
    accuracy_json = report(capsys, config, "--accuracy", "--by", "facility,product,day", "--json")
    assert json.loads(accuracy_json) == expected.accuracy()
    chart = tmp_path / "units.svg"
    report(capsys, config, "--by", "facility,reason", "--plot", str(chart))
    assert "STORE_2" in chart.read_text(encoding="utf-8")
    text = report(capsys, config, "--format", "csv", "--by", "reason")
    assert text.splitlines()[0] == "reason_id,units,events"
    assert "VAR_SAMPLE,-1,1" in text.splitlines()


async def publish(bootstrap: str, sent: list[Event]) -> None:
    async with VarianceProducer(kafka=KafkaConfig(bootstrap=bootstrap)) as producer:
        for event in sent:
            await producer.publish(event)
