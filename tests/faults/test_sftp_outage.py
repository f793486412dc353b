"""Scenario 4: the SFTP server is down for many windows while events keep flowing."""

from __future__ import annotations

import time

from tests.faults.harness import WINDOW_SECONDS, FaultStack


def test_every_batch_arrives_once_after_an_outage(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=4)
    before, during = traffic.events(20), traffic.events(60)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(before)
    stack.wait_published(traffic.expected(before))
    stack.sshd.stop()
    try:
        for start in range(0, len(during), 10):
            stack.publish(during[start : start + 10])
            time.sleep(WINDOW_SECONDS)  # ten windows pass while the server is down
        assert worker.get("/ready")[0] == 503
    finally:
        stack.sshd.start()
    stack.wait_published(traffic.expected(before + during))
    stack.assert_exact(traffic.expected(before + during))
