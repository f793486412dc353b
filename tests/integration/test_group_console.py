"""The group console with two workers in one group, on a live broker, in headless chromium:
each worker's page shows both workers and every input partition, with the assignment the
broker itself reports for the group; both serve the same lag history, which a worker that
started later read back from the status topic; a stopped worker is shown as gone.

The expected page is built here from the serving worker's `/group` and `/lag/history` with
the page's own rules, and the assignment is checked against the broker's DescribeGroups
answer (on Apache Kafka; Tansu leaves member assignments out of it, so there the members
and the partitions are), so nothing the page must show is written into this test."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from selenium.webdriver import Chrome

from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import TopicNames, prepare_broker
from streams.kafka.offsets import OffsetReader
from tests.factories import stack_config
from tests.fixtures.worker import WorkerProcess, wait_for

NONE = "—"
Held = tuple[tuple[str, int], ...]  # a worker's input partitions, sorted
SETTLE = 120.0  # two joins and a rebalance, on either broker


def test_every_workers_page_shows_the_whole_group(
    tmp_path: Path, broker: LocalBroker, browser: Chrome
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    kafka = load_settings(config).kafka
    asyncio.run(prepare_broker(kafka))
    first = WorkerProcess(config, tmp_path / "worker-a.log", data_dir=tmp_path / "data-a")
    second = WorkerProcess(config, tmp_path / "worker-b.log", data_dir=tmp_path / "data-b")
    try:
        first.start().wait_ready()
        wait_for(lambda: bool(points(first)), 60, "the group's first lag sample", first)
        early = points(first)[0]
        second_started = time.time()
        second.start().wait_ready()
        assert early["at"] < second_started
        agreed = wait_for_agreement(kafka, [first, second])
        assert len(agreed) == len((first, second))  # both hold partitions
        # The later worker's history reaches back before it started: read from the topic.
        wait_for(lambda: early in points(second), 30, "the history read back", second)
        wait_for(lambda: points(first) == points(second), 60, "one history", first, second)
        for worker in (first, second):
            browser.get(f"http://127.0.0.1:{worker.web_port}/console?refresh=1")
            check_group_page(browser, worker, agreed)
        browser.save_screenshot(str(tmp_path / "group-console.png"))  # for a failing run
        second.stop()
        wait_for(
            lambda: states(first) == {address(first): "live", address(second): "gone"},
            60,
            "the stopped worker shown as gone",
            first,
        )
        alone = wait_for_agreement(kafka, [first])
        assert list(alone) == [address(first)]
        browser.get(f"http://127.0.0.1:{first.web_port}/console?refresh=1")
        check_group_page(browser, first, alone)
    finally:
        second.stop()
        first.stop()


def address(worker: WorkerProcess) -> str:
    """How a worker's status names its web address (the fixture binds it on loopback)."""
    return f"127.0.0.1:{worker.web_port}"


def points(worker: WorkerProcess) -> list[dict[str, Any]]:
    status, body = worker.get("/lag/history")
    assert status == 200
    found: list[dict[str, Any]] = body["points"]
    return found


def states(worker: WorkerProcess) -> dict[str, str]:
    _, group = worker.get("/group")
    return {w["web"]: w["state"] for w in group["workers"]}


def held(group: dict[str, Any]) -> dict[str, Held]:
    """Live workers that hold partitions, by web address, from a `/group` answer."""
    return {
        w["web"]: tuple(sorted((p["topic"], p["partition"]) for p in w["partitions"]))
        for w in group["workers"]
        if w["state"] == "live" and w["partitions"]
    }


def wait_for_agreement(kafka: KafkaConfig, workers: list[WorkerProcess]) -> dict[str, Held]:
    """Until every worker's `/group` shows the same assignment, covering every input
    partition once, and the broker's own description of the group says the same."""
    found: dict[str, Held] = {}
    last: dict[str, Any] = {}

    def agreed() -> bool:
        views = [held(worker.get("/group")[1]) for worker in workers]
        broker = asyncio.run(broker_view(kafka))
        last.update(workers=views, broker=broker)
        if any(view != views[0] for view in views):
            return False
        shown = sorted(views[0].values())
        taken = sorted(tp for partitions in shown for tp in partitions)
        if taken != broker.everything or broker.members != len(workers):
            return False
        if broker.held is not None and shown != broker.held:
            return False
        found.update(views[0])
        return True

    try:
        wait_for(agreed, SETTLE, "the workers and the broker to agree on the group")
    except AssertionError as failed:
        shown = "".join(f"\n{worker.describe()}" for worker in workers)
        raise AssertionError(f"{failed}; last seen {last}{shown}") from None
    return found


@dataclass(frozen=True)
class BrokerView:
    """What the broker says: every input partition, the stable group's member count, and
    each member's input partitions, members holding none left out. Tansu answers
    DescribeGroups with empty assignments, so there `held` is None and only the members
    are compared."""

    everything: list[tuple[str, int]]
    members: int
    held: list[Held] | None


async def broker_view(kafka: KafkaConfig) -> BrokerView:
    inputs = TopicNames.from_config(kafka).inputs
    async with OffsetReader(kafka) as reader:
        everything = sorted((tp.topic, tp.partition) for tp in await reader.partitions_of(inputs))
        answer = await reader.admin.describe_consumer_groups([kafka.group_id])
    groups = [g for g in answer[0].to_object()["groups"] if g["group"] == kafka.group_id]
    if not groups or groups[0]["state"] != "Stable":
        return BrokerView(everything, 0, [])
    members = groups[0]["members"]
    if not any(member["member_assignment"] for member in members):
        return BrokerView(everything, len(members), None)
    held: list[Held] = []
    for member in members:
        decoded = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        mine = tuple(sorted((tp.topic, tp.partition) for tp in decoded.partitions()))
        chosen = tuple(tp for tp in mine if tp[0] in inputs)
        if chosen:
            held.append(chosen)
    return BrokerView(everything, len(members), sorted(held))


def check_group_page(browser: Chrome, worker: WorkerProcess, agreed: dict[str, Held]) -> None:
    """The Workers panel and the history chart equal what this worker serves, after two
    refreshes during which the views stood still; and the partitions it shows are the
    broker's assignment."""
    for _ in range(5):
        views = read_views(worker)
        wait_for_refreshes(browser, worker, 2)
        page = read_page(browser)
        if read_views(worker) == views:
            assert page == expected_page(views)
            shown = {row[-1]: parse_held(row[2]) for row in page["workers"] if row[1] == "LIVE"}
            assert {web: partitions for web, partitions in shown.items() if partitions} == agreed
            return
    raise AssertionError("the views never stood still for two refreshes of the page")


def read_views(worker: WorkerProcess) -> dict[str, Any]:
    _, group = worker.get("/group")
    _, history = worker.get("/lag/history")
    for shown in group["workers"]:
        # They move with the clock on every report; the page's last-seen column is not
        # compared for the same reason.
        for moving in ("last_seen", "age_seconds", "open_batches", "last_publish"):
            shown.pop(moving)
    history.pop("at")  # the reading moment
    return {"workers": group["workers"], "expiry": group["expiry_seconds"], "history": history}


def wait_for_refreshes(browser: Chrome, worker: WorkerProcess, more: int) -> None:
    wanted = refreshes(browser) + more
    wait_for(lambda: refreshes(browser) >= wanted, 30, f"{more} refreshes", worker)


def refreshes(browser: Chrome) -> int:
    return int(browser.execute_script("return document.body.dataset.refreshes || 0"))


def read_page(browser: Chrome) -> dict[str, Any]:
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#workers tbody tr')]"
        ".filter(row => !row.querySelector('td.empty'))"
        ".map(row => [...row.cells].map(cell => cell.textContent));"
    )
    dots = browser.execute_script(
        "return [...document.querySelectorAll('#chart-lag-history circle.point')]"
        ".map(dot => [Number(dot.dataset.at), Number(dot.dataset.lag)]);"
    )
    expiry = browser.execute_script("return document.getElementById('worker-expiry').textContent")
    # Columns 3 (open batches) and 7 (last seen) tick with the clock.
    return {
        "workers": [row[:3] + row[4:7] + row[8:] for row in rows],
        "history": [(at, lag) for at, lag in dots],
        "expiry": expiry,
    }


def expected_page(views: dict[str, Any]) -> dict[str, Any]:
    return {
        "workers": [
            [
                w["worker"],
                w["state"].upper(),
                ", ".join(f"{p['topic']}[{p['partition']}]" for p in w["partitions"]) or NONE,
                writer_states(w["writers"]),
                ", ".join(str(h["partition"]) for h in w["halted_partitions"]) or NONE,
                f"{w['dead_letters']['total']} ({w['dead_letters']['redriven']} re-driven)",
                w["web"],
            ]
            for w in views["workers"]
        ],
        "history": [(p["at"], p["total_lag"]) for p in views["history"]["points"]],
        "expiry": number(views["expiry"]),
    }


def writer_states(writers: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for writer in writers:
        counts[writer["state"]] = counts.get(writer["state"], 0) + 1
    return ", ".join(f"{state} {counts[state]}" for state in sorted(counts)) or NONE


def number(value: float) -> str:
    """As JavaScript's String(number): 15.0 is "15"."""
    return str(int(value)) if value == int(value) else str(value)


def parse_held(text: str) -> Held:
    if text == NONE:
        return ()
    found = []
    for item in text.split(", "):
        topic, _, rest = item.rpartition("[")
        found.append((topic, int(rest.rstrip("]"))))
    return tuple(sorted(found))
