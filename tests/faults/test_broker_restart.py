"""What only a real broker can show, on Apache Kafka: the broker stopped and started again
on the same log dir, for longer than the worker waits for a ready broker, while events
flow. Nothing is lost, nothing is booked twice, and the worker rides it out. The
changelog topics Faust created are compacted, as read back from the broker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.devstack.local_kafka import KafkaBroker
from streams.kafka.offsets import FETCH_TIMEOUT
from streams.producer.client import Event, PublishFailed
from tests.faults.harness import FaultStack
from tests.fixtures.sshd import SSHDServer

CHANGELOGS = ("variance-sync-inventory-changelog", "variance-sync-progress-changelog")


@pytest.fixture
def kafka_stack(
    tmp_path: Path, kafka_broker: KafkaBroker, sshd: SSHDServer
) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_path, kafka_broker, sshd)
    try:
        yield stack
    finally:
        stack.stop_all()


async def cleanup_policies(bootstrap: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in CHANGELOGS]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    found = {}
    for response in responses:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            found[name] = next(str(e[1]) for e in entries if e[0] == "cleanup.policy")
    return found


def publish_steadily(stack: FaultStack, events: list[Event], done: threading.Event) -> None:
    """As an OMS would: small batches, each sent again until the broker takes it."""
    for start in range(0, len(events), 10):
        while True:
            try:
                stack.publish(events[start : start + 10])
                break
            except PublishFailed:
                time.sleep(0.5)
        time.sleep(0.2)
    done.set()


def test_a_broker_restart_mid_stream_loses_and_repeats_nothing(kafka_stack: FaultStack) -> None:
    stack = kafka_stack
    broker = stack.broker
    assert isinstance(broker, KafkaBroker)
    traffic = stack.traffic(seed=21)
    events = traffic.events(150)
    worker = stack.start_worker()
    worker.wait_ready()
    assert asyncio.run(cleanup_policies(broker.bootstrap)) == dict.fromkeys(CHANGELOGS, "compact")

    done = threading.Event()
    load = threading.Thread(target=publish_steadily, args=(stack, events, done))
    load.start()
    time.sleep(2)
    broker.stop()  # a controlled shutdown, then the same folder and ports again
    # With the restart, longer than the worker's ops reader waits for a ready broker (its
    # raw error once crashed the worker; test_monitor_outage pins that down), and well
    # short of the changelog writer's 40 s produce timeout, which stops the worker by design.
    time.sleep(FETCH_TIMEOUT)
    broker.start()
    load.join(timeout=180)
    assert done.is_set(), "the producer never got its events in"
    assert worker.alive, worker.log()
    stack.wait_published(traffic.expected(events), timeout=180)
    stack.assert_exact(traffic.expected(events))
    stack.assert_positions(worker, traffic.expected(events))
    assert worker.alive, worker.log()
