"""Topics that refuse the worker's writes: a dead letter too large for the DLQ, the DLQ's
Write ACL taken away, the DLQ topic deleted (with auto-creation off), and the changelogs'
Write ACL taken away.

None of them may lose or double an event. A dead letter that can never fit is written cut
to fit, with its original size and digest. A refusal that an operator can fix stops the
partition it hits, loudly (`/ready` names it and why), while other partitions go on; once
the cause is gone the partition is consumed again from its last durable event, and every
row, position and dead letter ends exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.cli import main as cli
from streams.config import KafkaConfig
from streams.core.dead_letter import ORIGINAL_SHA256, TRUNCATED_FROM
from streams.devstack.local_kafka import KafkaBroker
from streams.kafka.broker import client_options
from streams.kafka.offsets import OffsetReader
from tests.faults.harness import FaultStack, halted, wait_halted
from tests.faults.traffic import Traffic
from tests.fixtures.secure_kafka import PREFIX, SecureKafka, secure_kafka
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import wait_for

__all__ = ["secure_kafka"]

# Partitions (of 4, by the default partitioner): STORE_1 -> 0; STORE_2 and the unmapped
# STORE_9, whose events are dead-lettered, -> 1.
HIT, UNTOUCHED = 1, 0
QUICK = "produce_timeout_seconds = 5\n"


def store_1(traffic: Traffic, count: int) -> list[Any]:
    """Events of STORE_1 only: partition 0, which no fault here touches."""
    found: list[Any] = []
    while len(found) < count:
        event = traffic.next_event()
        if event.facility_id == "STORE_1":
            found.append(event)
    return found


def test_a_dead_letter_too_large_for_the_dlq_is_cut_to_fit(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=31)
    before, after = traffic.events(15), traffic.events(15)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(before)
    # 40 MB that compress to almost nothing: the broker takes the compressed batch, the
    # worker decompresses it, and its dead letter can never fit the DLQ (32 MiB at most).
    huge = b'{"event_id": "huge", "comments": "' + b"0" * 40_000_000 + b'"}'
    asyncio.run(send_compressed(stack.settings.kafka, huge))
    stack.publish(after)
    stack.wait_published(traffic.expected(before + after))
    stack.wait_caught_up()  # rows land before their dead letters may
    [letter] = asyncio.run(dead_letters_of(stack.settings.kafka))
    headers = dict(letter.headers)
    assert headers[TRUNCATED_FROM] == str(len(huge)).encode()
    assert headers[ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest().encode()
    assert huge.startswith(letter.value)
    assert len(letter.value) < 33 * 1024 * 1024
    assert worker.alive
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        argv = [
            "dlq",
            "redrive",
            "--execute",
            "--offset",
            str(letter.offset),
            "--config",
            str(stack.config),
        ]
        assert cli(argv) == 0
    assert f"skipping {letter.offset}: its dead letter was cut to fit the DLQ" in out.getvalue()
    stack.assert_exact(traffic.expected(before + after))


async def send_compressed(kafka: KafkaConfig, value: bytes) -> None:
    producer = AIOKafkaProducer(
        **client_options(kafka), compression_type="gzip", max_request_size=64 * 1024 * 1024
    )
    await producer.start()
    try:
        assert len(gzip.compress(value)) < 1024 * 1024  # what the broker checks
        await producer.send_and_wait(
            kafka.topics.variance_logged,
            value,
            key=b"STORE_1",
            headers=[("content-type", b"application/json")],
        )
    finally:
        await producer.stop()


async def dead_letters_of(kafka: KafkaConfig) -> list[Any]:
    async with OffsetReader(kafka) as reader:
        tp = TopicPartition(kafka.topics.dlq, 0)
        end = (await reader.high_watermarks([tp]))[tp]
        return await reader.records(tp, 0, end)


@pytest.fixture
def secure_stack(
    tmp_path: Path, secure_kafka: SecureKafka, sshd: SSHDServer
) -> Iterator[FaultStack]:
    """The stage on the secured broker, as the user `worker`, under its ACL prefix."""
    name = tmp_path.name.replace("_", "-")[:30]
    topics = f"""
[kafka.topics]
count_approved = "{PREFIX}counts.{name}"
variance_logged = "{PREFIX}variances.{name}"
dlq = "{PREFIX}dlq.{name}"
dlq_redrives = "{PREFIX}redrives.{name}"
status = "{PREFIX}status.{name}"
"""
    kafka = f'{secure_kafka.kafka_toml("worker")}group_id = "{PREFIX}{name}"\n{QUICK}{topics}'
    stack = FaultStack(tmp_path, secure_kafka.broker, sshd, kafka_toml=kafka)
    try:
        yield stack
    finally:
        stack.stop_all()


def test_a_dlq_that_refuses_writes_halts_its_partition_until_it_takes_them_again(
    secure_stack: FaultStack, secure_kafka: SecureKafka
) -> None:
    stack = secure_stack
    dlq = stack.settings.kafka.topics.dlq
    traffic = stack.traffic(seed=32)
    first = traffic.events(20)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(first)
    stack.wait_published(traffic.expected(first))
    secure_kafka.deny("worker", "Write", dlq)
    try:
        bad = traffic.bad_events(2)
        stack.publish(bad)
        reasons = wait_halted(worker, 60, HIT)
        assert "Authorization" in reasons[HIT], reasons
        assert UNTOUCHED not in reasons
        # The other partitions go on: their events reach NetSuite meanwhile.
        elsewhere = store_1(traffic, 10)
        stack.publish(elsewhere)
        stack.wait_published(traffic.expected(first + elsewhere))
    finally:
        secure_kafka.undeny("worker", "Write", dlq)
    later = traffic.events(10)
    stack.publish(later)
    everything = first + bad + elsewhere + later
    stack.wait_published(traffic.expected(everything), timeout=120)
    wait_for(lambda: not halted(worker), 60, "the partition to be consumed again", worker)
    stack.assert_exact(traffic.expected(everything))
    stack.assert_dead_letters_once(traffic.bad_ids)


def test_changelogs_that_refuse_writes_halt_until_they_take_them_again(
    secure_stack: FaultStack, secure_kafka: SecureKafka
) -> None:
    stack = secure_stack
    group = stack.settings.kafka.group_id
    changelogs = [f"{group}-{table}-changelog" for table in ("inventory", "progress")]
    traffic = stack.traffic(seed=33)
    first = traffic.events(20)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(first)
    stack.wait_published(traffic.expected(first))
    for topic in changelogs:
        secure_kafka.deny("worker", "Write", topic)
    try:
        during = traffic.events(15) + traffic.bad_events(2)
        stack.publish(during)
        reasons = wait_halted(worker, 60)
        assert all("Authorization" in reason for reason in reasons.values()), reasons
    finally:
        for topic in changelogs:
            secure_kafka.undeny("worker", "Write", topic)
    everything = first + during
    stack.wait_published(traffic.expected(everything), timeout=180)
    wait_for(lambda: not halted(worker), 90, "every partition to be consumed again", worker)
    stack.assert_exact(traffic.expected(everything))
    stack.assert_dead_letters_once(traffic.bad_ids)


def test_a_deleted_dlq_topic_halts_its_partition_until_it_is_back(
    kafka_stack: FaultStack,
) -> None:
    stack = kafka_stack
    stack.kafka_toml = f'bootstrap = "{stack.broker.bootstrap}"\n{QUICK}'
    traffic = stack.traffic(seed=34)
    first = traffic.events(20)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(first)
    stack.wait_published(traffic.expected(first))
    asyncio.run(delete_topic(stack.settings.kafka, stack.settings.kafka.topics.dlq))
    bad = traffic.bad_events(2)
    stack.publish(bad)
    wait_halted(worker, 90, HIT)
    elsewhere = store_1(traffic, 10)
    stack.publish(elsewhere)
    stack.wait_published(traffic.expected(first + elsewhere))
    stack.create_topics()  # what an operator does: bring the DLQ back
    everything = first + bad + elsewhere
    wait_for(lambda: not halted(worker), 120, "the partition to be consumed again", worker)
    stack.wait_published(traffic.expected(everything), timeout=120)
    stack.assert_exact(traffic.expected(everything))
    stack.assert_dead_letters_once(traffic.bad_ids)
    assert isinstance(stack.broker, KafkaBroker)


async def delete_topic(kafka: KafkaConfig, topic: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
