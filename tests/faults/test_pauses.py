"""Pauses: a worker frozen past its session timeout while its partitions move to another
worker, then woken up, several times, and at the worst moments: in the middle of a
publish (its upload named for promotion, not yet renamed into csv/) and in the middle of
a changelog flush (records taken, none sent).

A woken worker must have no effect on partitions it lost: its changelog records and dead
letters are fenced by the transactional producer its successor opened (Apache Kafka; on
Tansu, which has no transactions, only the SFTP side is protected, so these run on Kafka),
and its seals and files cannot land (the ledger's no-replace claims and promotion
records). Every scenario ends exact: NetSuite's books, every position a worker serves,
`report`, `reconcile` and `rebuild-table` (a dry run).
"""

from __future__ import annotations

import time

from tests.faults.harness import FaultStack
from tests.fixtures.broker import KAFKA_GROUP_TIMING
from tests.fixtures.worker import WorkerProcess, wait_for

# Past the session timeout, with room for the group to move the partitions.
FROZEN = float(KAFKA_GROUP_TIMING["VARIANCE_SYNC_KAFKA__SESSION_TIMEOUT_SECONDS"]) * 2 + 3


def frozen_at(worker: WorkerProcess, step: str) -> None:
    wait_for(lambda: worker.stopped, 90, f"the worker to stop itself at {step!r}", worker)
    assert f"fault point {step!r} reached" in worker.log()


def test_a_worker_frozen_again_and_again_has_no_effect_once_woken(
    kafka_stack: FaultStack,
) -> None:
    stack = kafka_stack
    traffic = stack.traffic(seed=21)
    batches = [traffic.events(20) for _ in range(5)]
    sleeper = stack.start_worker()
    sleeper.wait_ready()
    steady = stack.start_worker()
    steady.wait_ready()
    stack.publish(batches[0])
    for batch in batches[1:4]:
        sleeper.pause()
        stack.publish(batch)  # consumed partly before, partly after the move
        time.sleep(FROZEN)
        sleeper.resume()
        time.sleep(3)  # awake: it finds out, and the group settles again
    stack.publish(batches[4])
    everything = [event for batch in batches for event in batch]
    expected = traffic.expected(everything)
    stack.wait_published(expected, timeout=180)
    stack.assert_exact(expected)
    sleeper.stop()
    stack.wait_sole_owner(steady)  # it serves every position from its own partitions
    stack.assert_positions(steady, expected)


def test_a_worker_frozen_in_the_middle_of_a_publish_cannot_land_its_file_again(
    kafka_stack: FaultStack,
) -> None:
    stack = kafka_stack
    traffic = stack.traffic(seed=22)
    steady = stack.start_worker()
    steady.wait_ready()
    sleeper = stack.start_worker(
        {"VARIANCE_SYNC_FAULT_POINT": "promoting", "VARIANCE_SYNC_FAULT_ACTION": "stop"}
    )
    sleeper.wait_ready()
    first = traffic.events(30)
    stack.publish(first)
    frozen_at(sleeper, "promoting")
    time.sleep(FROZEN)
    more = traffic.events(20)
    stack.publish(more)
    stack.wait_published(traffic.expected(first + more), timeout=120)
    stack.import_all()  # NetSuite moves the successor's files to archive/ meanwhile
    sleeper.resume()
    time.sleep(5)
    stack.assert_exact(traffic.expected(first + more))


def test_a_worker_frozen_in_the_middle_of_a_changelog_flush_is_fenced_when_woken(
    kafka_stack: FaultStack,
) -> None:
    stack = kafka_stack
    traffic = stack.traffic(seed=23)
    steady = stack.start_worker()
    steady.wait_ready()
    sleeper = stack.start_worker(
        {"VARIANCE_SYNC_FAULT_POINT": "changelog-sent", "VARIANCE_SYNC_FAULT_ACTION": "stop"}
    )
    sleeper.wait_ready()
    first = traffic.events(30) + traffic.bad_events(3)
    stack.publish(first)
    frozen_at(sleeper, "changelog-sent")  # its transaction's records are in the log
    time.sleep(FROZEN)
    more = traffic.events(20)
    stack.publish(more)
    expected = traffic.expected(first + more)
    stack.wait_published(expected, timeout=120)
    sleeper.resume()
    time.sleep(5)  # awake, with its transaction open: none of it may count
    assert stack.aborted_changelog_records() > 0  # its successor's claim aborted it
    stack.assert_exact(expected)
    stack.assert_dead_letters_once(traffic.bad_ids)
    sleeper.stop()
    stack.wait_sole_owner(steady)
    stack.assert_positions(steady, expected)
