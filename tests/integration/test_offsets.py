"""OffsetReader against a real broker, including what Tansu answers wrongly."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.kafka.offsets import OffsetReader
from tests.fixtures.broker import broker

__all__ = ["broker"]

BASE_MS = 1_700_000_000_000
TP0, TP1 = TopicPartition("events", 0), TopicPartition("events", 1)


async def fill(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("events", 2, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    # Sent without waiting, so they share one record batch: the case Tansu's
    # ListOffsets gets wrong.
    futures = [
        await producer.send("events", b"x", partition=0, timestamp_ms=BASE_MS + i * 1000)
        for i in range(10)
    ]
    await asyncio.gather(*futures)
    await producer.stop()


async def scenario(bootstrap: str) -> None:
    await fill(bootstrap)
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        assert await reader.partitions("events") == [TP0, TP1]
        assert await reader.high_watermarks([TP0, TP1]) == {TP0: 10, TP1: 0}
        record = await reader.record_at(TP0, 4)
        assert record is not None
        assert (record.offset, record.timestamp_ms) == (4, BASE_MS + 4000)
        assert await reader.record_at(TP0, 10) is None
        assert await reader.offset_for_time(TP0, BASE_MS + 6500, 0, 10) == 7
        assert await reader.offset_for_time(TP0, BASE_MS, 0, 10) == 0
        assert await reader.offset_for_time(TP0, BASE_MS + 99_000, 0, 10) == 10
        assert await reader.committed("nobody", [TP0, TP1]) == {TP0: None, TP1: None}
        await reader.commit("ops-test", {TP0: 3, TP1: 0})
        assert await reader.committed("ops-test", [TP0, TP1]) == {TP0: 3, TP1: 0}
        assert not (await reader.group_state("ops-test")).active
        member = AIOKafkaConsumer(
            "events",
            bootstrap_servers=bootstrap,
            group_id="ops-live",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=2000,
        )
        await member.start()
        try:
            await asyncio.sleep(3)
            assert (await reader.group_state("ops-live")).active
        finally:
            await member.stop()
        assert "ops-test" in await reader.groups()


def test_offsets_and_times_are_read_correctly(broker: LocalBroker) -> None:
    asyncio.run(scenario(broker.bootstrap))
