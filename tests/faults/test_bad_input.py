"""Scenario 7: bad input between good events. Each bad event lands in the DLQ with a precise
reason, the worker never crashes, and the good events around them reach NetSuite exactly."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.codec import encode_avro
from streams.devstack.local_kafka import KafkaBroker
from tests.factories import variance
from tests.faults.harness import FaultStack

VARIANCES = "hotwax.inventory.variance-logged"
COUNTS = "hotwax.inventory.count-approved"
JSON = [("content-type", b"application/json")]


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "event_id": "bad",
        "occurred_at": "2024-02-29T12:00:00-06:00",
        "facility_id": "STORE_1",
        "product_id": "10017",
        "netsuite_item_id": "3410",
        "quantity": -1,
        "reason_id": "VAR_LOST",
        "logged_by": "associate",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


MISMATCH = json.dumps(
    {
        "event_id": "bad-count",
        "occurred_at": "2024-02-29T12:00:00-06:00",
        "facility_id": "STORE_1",
        "count_id": "CC9",
        "approved_by": "m",
        "lines": [
            {
                "product_id": "1",
                "netsuite_item_id": "2",
                "counted_quantity": 3,
                "system_quantity": 1,
                "variance_quantity": 5,
            }
        ],
    }
).encode()


@dataclass(frozen=True)
class Bad:
    value: bytes
    error_class: str
    reason: str  # words the DLQ reason must contain
    topic: str = VARIANCES
    key: bytes = b"STORE_1"
    as_json: bool = False


TRUNCATED = encode_avro(variance(-1, event_id="trunc"))[:-6]
UNKNOWN_FINGERPRINT = b"\xc3\x01" + bytes(range(8)) + b"\x02"
BAD = [
    Bad(TRUNCATED, "decode", "truncated VarianceLogged.v2 body"),
    Bad(UNKNOWN_FINGERPRINT, "decode", "unknown schema fingerprint 0001020304050607"),
    Bad(b"[1, 2]", "decode", "JSON body must be an object, not list", as_json=True),
    Bad(b'{"event_id": "half"}', "invalid", "occurred_at: Field required", as_json=True),
    Bad(
        MISMATCH,
        "invalid",
        "5 is not counted_quantity - system_quantity (3 - 1 = 2)",
        topic=COUNTS,
        as_json=True,
    ),
    Bad(
        body(quantity=10**9), "invalid", "1000000000 is beyond the limit of +/-100000", as_json=True
    ),
    Bad(body(reason_id="VAR DAMAGED"), "invalid", "reason_id: contains ' '", as_json=True),
    Bad(
        body(facility_id="STORE_9"),
        "unroutable",
        "unknown facility 'STORE_9'",
        key=b"STORE_9",
        as_json=True,
    ),
    Bad(
        body(comments="x" * 10_000_000),
        "invalid",
        "bytes; at most 1048576 are accepted",
        as_json=True,
    ),
]


async def allow_big_records(bootstrap: str) -> None:
    """Apache Kafka refuses records over 1 MiB unless the topic allows more, as a retailer
    may; then they reach the worker, which must dead-letter them. (Tansu takes them.)"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        big = {"max.message.bytes": str(16 * 1024 * 1024)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, VARIANCES, big)])
    finally:
        await admin.close()


async def send_bad(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        for bad in BAD:
            headers = JSON if bad.as_json else []
            await producer.send_and_wait(bad.topic, bad.value, key=bad.key, headers=headers)
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        "variance-sync.dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + 60
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    headers["size"] = str(len(record.value or b""))
                    found.append(headers)
    finally:
        await consumer.stop()
    return found


def test_bad_events_are_dead_lettered_and_good_ones_flow(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=7)
    before, after = traffic.events(20), traffic.events(20)
    worker = stack.start_worker()
    worker.wait_ready()
    stack.publish(before)
    if isinstance(stack.broker, KafkaBroker):
        asyncio.run(allow_big_records(stack.broker.bootstrap))
    asyncio.run(send_bad(stack.broker.bootstrap))
    stack.publish(after)
    stack.wait_published(traffic.expected(before + after))
    assert worker.alive, worker.log()

    letters = asyncio.run(dead_letters(stack.broker.bootstrap, len(BAD)))
    assert len(letters) == len(BAD)
    for bad in BAD:
        (letter,) = [x for x in letters if bad.reason in x["variance-sync.error"]]
        assert letter["variance-sync.source-topic"] == bad.topic
        assert letter["variance-sync.error-class"] == bad.error_class
        assert letter["size"] == str(len(bad.value)), "the DLQ keeps the original bytes"
    stack.assert_exact(traffic.expected(before + after))
