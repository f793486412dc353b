"""Time: every decision is a function of the records and the config, never of when the
worker runs. Processing time decides only when a window closes.

- The same input, read by workers whose clocks are right, days ahead, hours behind, and
  jumping while they run (Debian's libfaketime, on the realtime clock only, as a wrong
  NTP step would move it), gives the same rows, the same dead letters and the same
  positions. "Too far in the future" is judged against each record's own timestamp.
- Future-dated events whose rows wait out an SFTP outage, then a restart of the worker
  under a clock twenty minutes ahead: each is decided as before, once.
- A backlog whose record times span far more than the duplicate horizon, so that positions
  prune the events they name as the backlog is caught up: a kill right before and right
  after a flush that carries such a prune loses and doubles nothing (positions prune only
  by a floor that is already durable).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.codec import encode_avro
from schemas.models import VarianceLogged
from sinks.feeds import FEEDS
from streams.cli import main as cli
from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import client_options
from streams.producer.client import Event
from tests.faults.harness import FaultStack
from tests.faults.traffic import Expected, Traffic
from tests.fixtures.ci import require
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import wait_for

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
AHEAD_REJECTED = timedelta(minutes=11)  # past validation.max_future_seconds (10 minutes)
AHEAD_ACCEPTED = timedelta(minutes=4)


def faketime(offset: str | None = None, *, jumps: Path | None = None) -> dict[str, str]:
    """The environment for a worker whose realtime clock is `offset` ("+3d", "-5h") or
    reads its offset from `jumps`, a file the test rewrites; its monotonic clock is true."""
    if not LIBFAKETIME.exists():
        require(f"no {LIBFAKETIME}: install Debian's faketime")
    env = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    if jumps is not None:
        return {**env, "FAKETIME_TIMESTAMP_FILE": str(jumps), "FAKETIME_NO_CACHE": "1"}
    return {**env, "FAKETIME": offset or "+0"}


def future_dated(traffic: Traffic, lead: timedelta) -> VarianceLogged:
    """A variance stamped `lead` after now; sent now, so its record time is now. On a
    product of its own: positions keep analytics days for a bounded time back from each
    event's day, and the traffic's days are in 2024."""
    event = traffic.next_event()
    while not isinstance(event, VarianceLogged):
        event = traffic.next_event()
    update = {
        "occurred_at": datetime.now(UTC) + lead,
        "product_id": "19999",
        "netsuite_item_id": "9999",
    }
    return event.model_copy(update=update)


async def send_raw(kafka: KafkaConfig, events: Sequence[Event]) -> None:
    """Past the producer client, whose own checks would refuse a future-dated event."""
    producer = AIOKafkaProducer(**client_options(kafka))
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                kafka.topics.variance_logged, encode_avro(event), key=event.facility_id.encode()
            )
    finally:
        await producer.stop()


def run_stack(base: FaultStack, name: str) -> FaultStack:
    """A stage on the same broker and sshd, with a group, DLQ and NetSuite folder of its
    own: it reads the whole input again."""
    folder = base.tmp_path / name
    folder.mkdir()
    kafka = (
        f'bootstrap = "{base.broker.bootstrap}"\ngroup_id = "clock-{name}"\n'
        f'[kafka.topics]\ndlq = "variance-sync.dlq.{name}"\n'
    )
    return FaultStack(
        folder, base.broker, base.sshd, base_dir=f"{base.base_dir}-{name}", kafka_toml=kafka
    )


def rows_of(stack: FaultStack) -> Counter[tuple[str, ...]]:
    found: Counter[tuple[str, ...]] = Counter()
    for feed in FEEDS:
        for path in (stack.root / feed.name / "csv").glob("*.csv"):
            lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
            found.update(tuple(row) for row in lines[1:])
    return found


def report_of(stack: FaultStack) -> list[dict[str, object]]:
    out = io.StringIO()
    argv = ["report", "--config", str(stack.config), "--json"]
    with contextlib.redirect_stdout(out):
        assert cli([*argv, "--by", "facility,product,reason,day"]) == 0
    result: list[dict[str, object]] = json.loads(out.getvalue())
    return result


def test_the_same_records_give_the_same_outcome_under_any_clock(
    stack: FaultStack, tmp_path: Path
) -> None:
    traffic = stack.traffic(seed=51)
    stack.create_topics()
    good = traffic.events(25)
    rejected: list[Event] = [future_dated(traffic, AHEAD_REJECTED) for _ in range(2)]
    accepted: list[Event] = [future_dated(traffic, AHEAD_ACCEPTED) for _ in range(2)]
    bad = traffic.bad_events(2)
    stack.publish(good + bad)
    asyncio.run(send_raw(stack.settings.kafka, rejected + accepted))
    expected = traffic.expected(good + accepted)
    jumps = tmp_path / "jumps"
    jumps.write_text("+0\n", encoding="utf-8")
    clocks = {
        "true": {},
        "ahead": faketime("+3d"),
        "behind": faketime("-5h"),
        "jumping": faketime(jumps=jumps),
    }
    runs = {name: run_stack(stack, name) for name in clocks}
    try:
        compare_clocks(runs, clocks, jumps, traffic, expected=expected, rejected=rejected)
    finally:
        for run in runs.values():
            run.stop_all()


def compare_clocks(
    runs: dict[str, FaultStack],
    clocks: dict[str, dict[str, str]],
    jumps: Path,
    traffic: Traffic,
    *,
    expected: Expected,
    rejected: Sequence[Event],
) -> None:
    for name, env in clocks.items():
        runs[name].start_worker(env)
    for offset in ("+2d", "-1h", "+0"):  # the jumping clock moves while it works
        time.sleep(2)
        jumps.write_text(f"{offset}\n", encoding="utf-8")
    for run in runs.values():
        run.wait_published(expected, timeout=180)
        run.wait_caught_up()  # rows land before their dead letters and table writes may
    outcomes = {
        name: (rows_of(run), run.dead_letter_ids(), report_of(run)) for name, run in runs.items()
    }
    first = outcomes["true"]
    assert first[1] == Counter(traffic.bad_ids + [e.event_id for e in rejected])
    for name, outcome in outcomes.items():
        assert outcome == first, f"the clock {name!r} changed the outcome"
    for run in runs.values():
        run.assert_exact(expected)


def test_future_dated_events_across_an_outage_and_a_restart_are_decided_once(
    stack: FaultStack,
) -> None:
    traffic = stack.traffic(seed=52)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.sshd.stop()
    good = traffic.events(15)
    rejected: list[Event] = [future_dated(traffic, AHEAD_REJECTED) for _ in range(2)]
    accepted: list[Event] = [future_dated(traffic, AHEAD_ACCEPTED) for _ in range(2)]
    stack.publish(good)
    asyncio.run(send_raw(stack.settings.kafka, rejected + accepted))
    wait_for(lambda: len(stack.dead_letter_ids()) == len(rejected), 60, "the dead letters", worker)
    worker.kill()  # rows still wait for SFTP; a worker restarted 20 minutes "later"
    later = stack.restart(worker, faketime("+20m"))
    stack.sshd.start()
    later.wait_ready()
    expected = traffic.expected(good + accepted)
    stack.wait_published(expected, timeout=120)
    stack.assert_exact(expected)
    stack.assert_dead_letters_once([event.event_id for event in rejected])


def backlog(traffic: Traffic, count: int, span: timedelta) -> list[tuple[int, Event]]:
    """Events on a few hot positions, stamped evenly over `span` up to now."""
    now = datetime.now(UTC)
    found = []
    for index in range(count):
        at = now - span + span * index / count
        event = traffic.next_event().model_copy(update={"occurred_at": at})
        found.append((round(at.timestamp() * 1000), event))
    return found


async def send_stamped(kafka: KafkaConfig, events: Sequence[tuple[int, Event]]) -> None:
    producer = AIOKafkaProducer(**client_options(kafka))
    await producer.start()
    try:
        for stamp, event in events:
            topic = (
                kafka.topics.variance_logged
                if isinstance(event, VarianceLogged)
                else kafka.topics.count_approved
            )
            await producer.send_and_wait(
                topic, encode_avro(event), key=event.facility_id.encode(), timestamp_ms=stamp
            )
    finally:
        await producer.stop()


@pytest.mark.parametrize("point", ["pruning", "pruned"])
def test_a_backlog_older_than_the_horizon_prunes_only_by_durable_floors(
    broker: LocalBroker, sshd: SSHDServer, tmp_path: Path, point: str
) -> None:
    # A horizon of 86 s and records over two days: positions forget the events they name
    # while the backlog is caught up; few rows at a time, so floors rise in between.
    stack = FaultStack(
        tmp_path,
        broker,
        sshd,
        batching_toml="max_pending_rows = 4",
        extra_toml="[dedupe]\nhorizon_days = 0.001\n",
    )
    try:
        prune_under_kills(stack, point)
    finally:
        stack.stop_all()


def prune_under_kills(stack: FaultStack, point: str) -> None:
    traffic = Traffic(stack.settings.netsuite, seed=53, products=2)
    stack.create_topics()
    events = backlog(traffic, 80, timedelta(days=2))
    asyncio.run(send_stamped(stack.settings.kafka, events))
    doomed = stack.start_worker({"VARIANCE_SYNC_FAULT_POINT": point})
    wait_for(lambda: not doomed.alive, 120, f"the worker to die at {point!r}", doomed)
    assert f"fault point {point!r} reached" in doomed.log()  # a prune happened first
    stack.restart(doomed).wait_ready()
    expected = traffic.expected([event for _, event in events])
    stack.wait_published(expected, timeout=180)
    stack.assert_exact(expected)
