"""One destination partition failing for a long time holds up no other partition.

The ledger folder of one (feed, source partition) refuses writes (`chattr +i`) for dozens
of batch windows while events keep coming on every partition. That writer keeps its rows
and retries; its partition's consumption pauses once `batching.max_pending_rows` of its
rows wait; every other partition keeps consuming and its files keep landing, window after
window (counted). Once the folder takes writes again, everything ends exact.
"""

from __future__ import annotations

import os
import subprocess

from sinks.feeds import ADJUSTMENT, FEEDS
from streams.producer.client import Event
from tests.faults.harness import FaultStack
from tests.faults.traffic import Traffic
from tests.fixtures.ci import require

ROUNDS = 20  # each waits for its flowing events' files
MAX_PENDING = 6
ADJUSTMENTS = ADJUSTMENT.name


def of_facility(traffic: Traffic, facility: str, count: int) -> list[Event]:
    found: list[Event] = []
    while len(found) < count:
        event = traffic.next_event()
        if event.facility_id == facility:
            found.append(event)
    return found


def files_of_partition(stack: FaultStack, partition: int) -> int:
    return sum(
        1
        for feed in FEEDS
        for path in (stack.root / feed.name / "csv").glob("*.csv")
        if f"-p{partition}_" in path.name
    )


def test_a_partition_failing_for_long_holds_up_no_other(stack: FaultStack) -> None:
    if os.geteuid() != 0:
        require("chattr +i needs root")
    stack.batching_toml = f"max_pending_rows = {MAX_PENDING}"
    traffic = stack.traffic(seed=61)
    worker = stack.start_worker()
    worker.wait_ready()
    # STORE_2's variances are on partition 1: their adjustment ledger refuses every write.
    topic = stack.settings.kafka.topics.variance_logged
    stuck = stack.root / "variance-sync" / "ledger" / ADJUSTMENTS / topic / "p1"
    stuck.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    flowing: list[Event] = []
    waiting: list[Event] = []
    rounds_with_new_files = rounds_with_rows = 0
    try:
        for _ in range(ROUNDS):
            more, held = of_facility(traffic, "STORE_1", 2), of_facility(traffic, "STORE_2", 2)
            stack.publish(more + held)
            flowing, waiting = flowing + more, waiting + held
            before = files_of_partition(stack, 0)
            stack.wait_published(traffic.expected(flowing), settle=False)
            if traffic.expected(more).references:
                rounds_with_rows += 1
                rounds_with_new_files += files_of_partition(stack, 0) > before
        assert rounds_with_rows >= ROUNDS // 2
        assert rounds_with_new_files == rounds_with_rows  # window after window
        _, batches = worker.get("/batches")
        held_rows = [
            p["rows"]
            for p in batches["pending"]
            if (p["feed"], p["topic"], p["partition"]) == (ADJUSTMENTS, topic, 1)
        ]
        assert held_rows, batches
        assert held_rows[0] <= MAX_PENDING + 5, held_rows  # paused, not piling up
        assert any(
            (w["feed"], w["topic"], w["partition"], w["state"])
            == (ADJUSTMENTS, topic, 1, "retrying")
            for w in batches["writers"]
        )
        assert worker.alive
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    expected = traffic.expected(flowing + waiting)
    stack.wait_published(expected, timeout=180)
    stack.assert_exact(expected)
