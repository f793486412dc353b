"""Crashes inside the table protocol (docs/table-protocol.md), on RocksDB: a worker killed
after its table writes but before their changelog records reach the broker, or after the
ack but before its events are marked durable, restarts on its own data dir, and then its
partitions move to a second worker. Every owner must hold exactly the fold of the inputs.
"""

from __future__ import annotations

import signal

import pytest

from tests.faults.harness import FaultStack
from tests.fixtures.worker import wait_for


# The first flush with records holds the table writes of the first events: killed before
# any of them reaches the broker. The second is acked, then killed before its events are.
@pytest.mark.parametrize(("step", "skip"), [("changelog-unsent", 0), ("changelog-acked", 1)])
def test_a_kill_around_the_changelog_ack_leaves_every_owner_exact(
    stack: FaultStack, step: str, skip: int
) -> None:
    # Many positions, each touched by few events, so that a lost write is not papered over
    # by a later write of the same position (a position record is its whole state); and a
    # backlog, so that the first flush holds the writes of many events.
    traffic = stack.traffic(seed=11)
    events = traffic.events(60)
    stack.create_topics()
    stack.publish(events)
    fault = {"VARIANCE_SYNC_FAULT_POINT": step, "VARIANCE_SYNC_FAULT_SKIP": str(skip)}
    doomed = stack.start_worker(fault)
    wait_for(lambda: not doomed.alive, 60, f"the worker to die at {step!r}", doomed)
    assert doomed.kill() == -signal.SIGKILL
    assert f"fault point {step!r} reached" in doomed.log()
    restarted = stack.restart(doomed)  # on the same RocksDB folder
    restarted.wait_ready()
    stack.wait_published(traffic.expected(events))
    stack.assert_positions(restarted, traffic.expected(events))
    stack.assert_tables_exact()
    # Its partitions move to a worker that recovers them from the changelogs alone.
    successor = stack.start_worker()
    successor.wait_ready()
    restarted.stop()
    stack.wait_sole_owner(successor)
    stack.assert_positions(successor, traffic.expected(events))
    more = traffic.events(20)
    stack.publish(more)
    stack.wait_published(traffic.expected(events + more))
    stack.assert_exact(traffic.expected(events + more))


def test_hot_positions_re_delivered_out_of_order_at_rebalances(stack: FaultStack) -> None:
    # Three products: each position takes dozens of events, far more than any window of
    # recent offsets, while rebalances and a kill re-deliver them in other orders.
    traffic = stack.traffic(seed=12, products=3)
    batches = [traffic.events(40) for _ in range(3)]
    first = stack.start_worker()
    first.wait_ready()
    stack.publish(batches[0])
    second = stack.start_worker()
    second.wait_ready()
    stack.publish(batches[1])
    first.kill()
    replacement = stack.restart(first)
    replacement.wait_ready()
    stack.publish(batches[2])
    everything = [event for batch in batches for event in batch]
    stack.wait_published(traffic.expected(everything), timeout=180)
    stack.assert_exact(traffic.expected(everything))
    second.stop()
    stack.wait_sole_owner(replacement)
    stack.assert_positions(replacement, traffic.expected(everything))
