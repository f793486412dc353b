"""Scenario 1: SIGKILL the worker at each step of the publish protocol, then restart it.

The worker kills itself with SIGKILL at the named fault point (streams/devstack/faults.py): after
the staging upload, after the rename into csv/, after the ledger update, and after the
acks but before Faust commits the offsets.
"""

from __future__ import annotations

import signal

import pytest

from tests.faults.harness import FaultStack
from tests.fixtures.worker import wait_for


@pytest.mark.parametrize("step", ["staged", "promoted", "recorded", "released"])
def test_a_kill_at_each_publish_step_loses_and_repeats_nothing(
    stack: FaultStack, step: str
) -> None:
    traffic = stack.traffic(seed=1)
    events = traffic.events(30)
    doomed = stack.start_worker({"VARIANCE_SYNC_FAULT_POINT": step})
    doomed.wait_ready()
    stack.publish(events)
    wait_for(lambda: not doomed.alive, 60, f"the worker to die at {step!r}", doomed)
    assert doomed.kill() == -signal.SIGKILL
    assert f"fault point {step!r} reached" in doomed.log()

    more = traffic.events(10)
    stack.restart(doomed).wait_ready()
    stack.publish(more)
    stack.wait_published(traffic.expected(events + more))
    stack.assert_exact(traffic.expected(events + more))
