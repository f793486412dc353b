"""Scenario 3: two workers and rebalances: a second worker joins, one is stopped with
SIGTERM, one is killed with SIGKILL. Faust re-delivers events at every rebalance; the
table and the CSVs must stay exact."""

from __future__ import annotations

from tests.faults.harness import FaultStack


def test_workers_joining_leaving_and_dying(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=3)
    batches = [traffic.events(25) for _ in range(4)]
    first = stack.start_worker()
    first.wait_ready()
    stack.publish(batches[0])
    second = stack.start_worker()
    second.wait_ready()
    stack.publish(batches[1])
    first.stop()  # SIGTERM: a clean leave
    stack.publish(batches[2])
    third = stack.start_worker()
    third.wait_ready()
    second.kill()  # SIGKILL: its partitions move after the session timeout
    stack.publish(batches[3])
    everything = [event for batch in batches for event in batch]
    stack.wait_published(traffic.expected(everything), timeout=180)
    stack.assert_exact(traffic.expected(everything))
    third.wait_ready()  # the survivor settles into owning everything
