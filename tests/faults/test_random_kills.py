"""Scenario 2: SIGKILL the worker at random moments under steady load, five times; each
replacement restarts on the killed worker's RocksDB data dir."""

from __future__ import annotations

import random
import threading
import time

from tests.faults.harness import FaultStack


def test_repeated_random_kills_under_load(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=2)
    events = traffic.events(150)
    worker = stack.start_worker()
    worker.wait_ready()

    def steady_load() -> None:
        for start in range(0, len(events), 10):
            stack.publish(events[start : start + 10])
            time.sleep(0.2)

    load = threading.Thread(target=steady_load)
    load.start()
    rng = random.Random(2)  # noqa: S311 - test timing
    for _ in range(5):
        time.sleep(rng.uniform(1.0, 4.0))
        worker.kill()
        worker = stack.restart(worker)
        worker.wait_ready()
    load.join()
    stack.wait_published(traffic.expected(events))
    stack.assert_exact(traffic.expected(events))
    stack.assert_positions(worker, traffic.expected(events))
