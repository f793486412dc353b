"""A three-node KRaft Apache Kafka cluster (replication factor 3, `min.insync.replicas` 2),
what one node cannot show: leaders that die while events flow, and a partition short of
in-sync replicas for longer than the worker's produce timeout.

The leaders of an input partition, a changelog partition and the DLQ partition are each
killed (SIGKILL) in turn, with good and bad events flowing; a node is away for longer
than the produce timeout. Every scenario ends exact: books, positions, `report`,
`reconcile`, `rebuild-table` (a dry run), and each dead letter once. One cluster at a
time (three JVMs on two cores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import KafkaConfig
from streams.kafka.broker import changelog_topic, client_options
from streams.producer.client import Event
from tests.faults.harness import FaultStack, halted, wait_halted
from tests.fixtures.kafka_cluster import KafkaCluster, kafka_cluster
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import wait_for

__all__ = ["kafka_cluster"]

PRODUCE_TIMEOUT = 8
HIT = 1  # the partition of the unmapped store's events, which are dead-lettered


@pytest.fixture
def cluster_stack(
    tmp_path: Path, kafka_cluster: KafkaCluster, sshd: SSHDServer
) -> Iterator[FaultStack]:
    kafka = (
        f'bootstrap = "{kafka_cluster.bootstrap}"\n'
        "replication_factor = 3\n"
        f"produce_timeout_seconds = {PRODUCE_TIMEOUT}\n"
    )
    stack = FaultStack(tmp_path, kafka_cluster, sshd, kafka_toml=kafka)
    try:
        yield stack
    finally:
        stack.stop_all()


def test_leaders_killed_while_events_flow_lose_and_double_nothing(
    cluster_stack: FaultStack, kafka_cluster: KafkaCluster
) -> None:
    stack = cluster_stack
    kafka = stack.settings.kafka
    traffic = stack.traffic(seed=41)
    worker = stack.start_worker()
    worker.wait_ready()
    published: list[Event] = []
    targets = [
        (kafka.topics.variance_logged, 0),
        (changelog_topic(kafka.group_id, "inventory"), 1),
        (kafka.topics.dlq, 0),
    ]
    for topic, partition in targets:
        batch = traffic.events(15) + traffic.bad_events(1)
        stack.publish(batch[:8])
        leader = kafka_cluster.leader_of(topic, partition)
        kafka_cluster.node(leader).kill()  # while the worker writes and reads there
        stack.publish(batch[8:])
        kafka_cluster.wait_leader_moved(topic, partition, away_from=leader)
        published += batch
        stack.wait_published(traffic.expected(published), timeout=180)
        kafka_cluster.node(leader).start()
    expected = traffic.expected(published)
    stack.assert_exact(expected)
    stack.assert_dead_letters_once(traffic.bad_ids)
    assert worker.alive


def test_a_node_away_longer_than_the_produce_timeout(
    cluster_stack: FaultStack, kafka_cluster: KafkaCluster
) -> None:
    """With replication factor 3 the tables and inputs go on; the DLQ, made with two
    replicas here (an operator's choice), is short of in-sync replicas meanwhile: the
    partition that needs it halts, says why, and goes on once the node is back."""
    stack = cluster_stack
    kafka = stack.settings.kafka
    asyncio.run(dlq_on_two_nodes(kafka, nodes=[1, 2]))
    traffic = stack.traffic(seed=42)
    worker = stack.start_worker()
    worker.wait_ready()
    first = traffic.events(15)
    stack.publish(first)
    stack.wait_published(traffic.expected(first))
    kafka_cluster.node(2).stop()
    away = time.monotonic()
    during = traffic.events(20) + traffic.bad_events(2)
    stack.publish(during)
    wait_halted(worker, 90, HIT)  # the partition that dead-letters
    good_elsewhere = [e for e in during if e.facility_id == "STORE_1"]  # partition 0
    stack.wait_published(traffic.expected(first + good_elsewhere), timeout=120)
    time.sleep(max(0.0, PRODUCE_TIMEOUT * 2 - (time.monotonic() - away)))
    kafka_cluster.node(2).start()
    everything = first + during
    stack.wait_published(traffic.expected(everything), timeout=180)
    wait_for(lambda: not halted(worker), 90, "every partition to be consumed again", worker)
    stack.assert_exact(traffic.expected(everything))
    stack.assert_dead_letters_once(traffic.bad_ids)


async def dlq_on_two_nodes(kafka: KafkaConfig, nodes: list[int]) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        topic = NewTopic(
            kafka.topics.dlq,
            num_partitions=-1,
            replication_factor=-1,
            replica_assignments={0: nodes},
            topic_configs={"max.message.bytes": str(32 * 1024 * 1024)},
        )
        await admin.create_topics([topic])
    finally:
        await admin.close()
