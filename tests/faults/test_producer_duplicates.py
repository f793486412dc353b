"""Scenario 6: the producer sends every event twice, and out of order."""

from __future__ import annotations

import random

from tests.faults.harness import FaultStack


def test_duplicated_and_shuffled_events_count_once(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=6)
    events = traffic.events(60)
    copies = events + events
    random.Random(6).shuffle(copies)  # noqa: S311 - test data
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(copies)
    stack.wait_published(traffic.expected(events))
    stack.assert_exact(traffic.expected(events))
