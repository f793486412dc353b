"""JSON logs from a real worker on a real broker: every line it writes, Faust's own lines
included, is one JSON object, and the dead-letter line names the bad event's topic,
partition and offset as the broker gave them when it took the event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from streams.devstack.local_broker import EmbeddedBroker
from tests.factories import stack_config
from tests.fixtures.worker import WorkerProcess, wait_for

VARIANCE_TOPIC = "hotwax.inventory.variance-logged"
GARBAGE = b"\xc3\x01\x00\x01"  # the single-object marker, then a cut-off fingerprint


async def send_garbage(bootstrap: str) -> RecordMetadata:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent: RecordMetadata = await producer.send_and_wait(VARIANCE_TOPIC, GARBAGE, key=b"STORE_1")
        return sent
    finally:
        await producer.stop()


def entries(worker: WorkerProcess) -> list[dict[str, Any]]:
    """Every line the worker wrote, each parsed; a line that is not JSON fails here."""
    text = worker.log_file.read_text(encoding="utf-8")
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), f"line {number} is not an object: {line!r}"
        parsed.append(entry)
    return parsed


def dead_letter_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    return [e for e in entries(worker) if e["message"].startswith("dead-lettering ")]


def test_every_worker_line_is_json_and_the_dead_letter_line_locates_the_event(
    tmp_path: Path, tansu_broker: EmbeddedBroker
) -> None:
    config = stack_config(tmp_path, f'bootstrap = "{tansu_broker.bootstrap}"\n')
    worker = WorkerProcess(
        config, tmp_path / "worker.log", {"VARIANCE_SYNC_WORKER__LOG_FORMAT": "json"}
    ).start()
    try:
        worker.wait_ready()
        sent = asyncio.run(send_garbage(tansu_broker.bootstrap))
        wait_for(lambda: bool(dead_letter_lines(worker)), 60, "the dead-letter line", worker)
    finally:
        worker.stop()

    lines = entries(worker)  # after the stop: the shutdown lines are JSON too
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    assert any(e["logger"].startswith("faust.") for e in lines), "no line of Faust's own"
    [letter] = dead_letter_lines(worker)
    assert letter["level"] == "WARNING"
    assert letter["logger"] == "streams.worker.ingest"
    assert (letter["topic"], letter["partition"], letter["offset"]) == (
        sent.topic,
        sent.partition,
        sent.offset,
    )
