"""The console's dead-letter counts on a real broker: read forward a bounded step at a
time, each record once, equal to what `variance-sync dlq list --json` counts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.cli import main
from streams.config import load_settings
from streams.core.dead_letter import HEADER_PREFIX
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import TopicNames, prepare_broker
from streams.kafka.dead_letter_counter import DeadLetterCounter
from streams.kafka.offsets import OffsetReader
from tests.factories import stack_config

LETTERS = [("decode", "no marker")] * 3 + [("invalid", "quantity: 0")] * 2


async def send(bootstrap: str, topics: TopicNames, letters: list[tuple[str, str]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for error_class, reason in letters:
            headers = [
                (HEADER_PREFIX + "error-class", error_class.encode()),
                (HEADER_PREFIX + "error", reason.encode()),
            ]
            await producer.send_and_wait(topics.dlq, b"{}", headers=headers)
        await producer.send_and_wait(topics.dlq_redrives, b"{}", key=b"1")
    finally:
        await producer.stop()


def test_dead_letters_are_counted_once_a_step_at_a_time(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{broker.bootstrap}"\n')
    settings = load_settings(config)
    topics = TopicNames.from_config(settings.kafka)

    async def scenario() -> DeadLetterCounter:
        await prepare_broker(settings.kafka)
        counter = DeadLetterCounter(topics, step=2)
        async with OffsetReader(settings.kafka) as reader:
            await counter.catch_up(reader)
            assert counter.tally.total == 0
            await send(broker.bootstrap, topics, LETTERS)
            totals = []
            for _ in range(4):
                await counter.catch_up(reader)
                totals.append(counter.tally.total)
            assert totals == [2, 4, 5, 5]  # two more per call, then nothing new
            await send(broker.bootstrap, topics, LETTERS[:1])
            await counter.catch_up(reader)
        return counter

    counter = asyncio.run(scenario())
    assert counter.tally.by_class == {"decode": 4, "invalid": 2}
    assert len(counter.tally.redriven) == 1  # one offset, re-driven in two records
    assert main(["dlq", "list", "--config", str(config), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["dead_letters"] == counter.tally.total
