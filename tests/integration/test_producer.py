"""`VarianceProducer`, the API OMS services use, against a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition

from schemas.codec import decode_event
from schemas.exceptions import InvalidEvent
from schemas.models import EventKind, ValidationLimits
from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.devstack.local_kafka import KafkaBroker
from streams.kafka.broker import prepare_broker
from streams.kafka.offsets import OffsetReader
from streams.producer.client import VarianceProducer
from tests.factories import count, variance
from tests.fixtures.broker import broker

__all__ = ["broker"]

VARIANCES = "hotwax.inventory.variance-logged"


async def end_offsets(kafka: KafkaConfig, topic: str) -> int:
    async with OffsetReader(kafka) as reader:
        tps = await reader.partitions(topic)
        return sum((await reader.high_watermarks(tps)).values())


async def scenario(bootstrap: str, idempotent: bool) -> None:
    kafka = KafkaConfig(bootstrap=bootstrap)
    await prepare_broker(kafka)
    strict = ValidationLimits(max_abs_quantity=10, max_future=timedelta(minutes=1))
    async with VarianceProducer(kafka=kafka, limits=strict) as producer:
        # Idempotent where the broker offers it (Apache Kafka), detected by flavor.
        assert producer.idempotent is idempotent
        first = await producer.publish(variance(-3, event_id="p-1"))
        again = await producer.publish(variance(-2, event_id="p-2"))
        assert (first.topic, first.event_id) == (VARIANCES, "p-1")
        assert again.partition == first.partition  # keyed by facility: one partition per store
        with pytest.raises(InvalidEvent, match="quantity"):
            await producer.publish(variance(-50, event_id="p-3"))
        future = datetime.now(UTC) + timedelta(minutes=5)  # beyond this producer's limit
        with pytest.raises(InvalidEvent, match="occurred_at"):
            await producer.publish_many(
                [variance(-1, event_id="p-4"), variance(-1, event_id="p-5", at=future)]
            )
        delivered = await producer.publish(count(event_id="c-1"))
        assert delivered.topic == "hotwax.inventory.count-approved"
    assert await end_offsets(kafka, VARIANCES) == 2  # nothing of the refused calls was sent
    async with OffsetReader(kafka) as reader:
        tp = TopicPartition(VARIANCES, first.partition)
        (record,) = await reader.records(tp, first.offset, first.offset + 1)
    assert record.key == b"STORE_1"
    event, version = decode_event(
        record.value, EventKind.VARIANCE_LOGGED, None, strict, datetime.now(UTC)
    )
    assert (event.event_id, version) == ("p-1", "VarianceLogged.v2")


def test_the_producer_validates_encodes_keys_and_awaits_delivery(broker: LocalBroker) -> None:
    asyncio.run(scenario(broker.bootstrap, idempotent=isinstance(broker, KafkaBroker)))
