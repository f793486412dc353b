"""`variance-sync dlq` against a real broker with hand-made dead letters: odd or missing
headers never crash it, and a re-drive sends exactly the bytes it read."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.codec import encode_avro
from streams.cli import main
from streams.config import KafkaConfig
from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from tests.factories import variance, write_config
from tests.fixtures.broker import broker

__all__ = ["broker"]

VARIANCE_TOPIC = "hotwax.inventory.variance-logged"
UNMAPPED = "unknown facility 'STORE_9' [netsuite.facilities]"


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["dlq", *argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def listing(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, config, "list", "--json", *argv)
    assert (code, err) == (0, "")
    data: dict[str, Any] = json.loads(out)
    return data


def worker_letter() -> DeadLetter:
    """What a worker writes, except that the source partition no longer exists."""
    record = SourceRecord(
        topic=VARIANCE_TOPIC,
        partition=7,
        offset=3,
        timestamp_ms=1_709_229_600_000,
        key=b"STORE_9",
        value=encode_avro(variance(-1, facility="STORE_9", event_id="odd-1")),
        headers=(("trace-id", b"abc"),),
    )
    return DeadLetter(record, ErrorClass.UNROUTABLE, UNMAPPED)


async def fill(bootstrap: str) -> None:
    await prepare_broker(KafkaConfig(bootstrap=bootstrap))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        dlq = "variance-sync.dlq"
        await producer.send_and_wait(dlq, b"\x00\x01garbage")
        letter = worker_letter()
        await producer.send_and_wait(
            dlq,
            letter.record.value,
            key=letter.record.key,
            headers=letter.headers(datetime.now(UTC)),
        )
        await producer.send_and_wait(
            dlq,
            b'{"odd": true}',
            key=b"\xff\xfe",
            headers=[
                ("content-type", b"application/json"),
                ("variance-sync.error-class", b"decode"),
                ("variance-sync.source-topic", b"somewhere.else"),
                ("variance-sync.source-offset", b"-4"),
                ("variance-sync.failed-at", b"yesterday"),
                ("variance-sync.error", b"\xff\xfe not utf-8"),
            ],
        )
        await producer.send_and_wait("variance-sync.dlq-redrives", b"not a re-drive", key=b"0")
    finally:
        await producer.stop()


async def read_back(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        return await asyncio.wait_for(consumer.getone(tp), 10)
    finally:
        await consumer.stop()


def test_dlq_commands_tolerate_odd_records_and_redrive_the_exact_bytes(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, f'\n[kafka]\nbootstrap = "{broker.bootstrap}"\n')
    code, out, err = run(capsys, config, "list")
    assert (code, out) == (2, "")
    assert err == (
        "variance-sync: error: no topic variance-sync.dlq yet "
        "(a worker creates it when it starts)\n"
    )
    asyncio.run(fill(broker.bootstrap))

    data = listing(capsys, config)
    garbage, letter, odd = data["records"]
    assert {k: v for k, v in garbage.items() if v not in (None, [])} == {
        "offset": 0,
        "timestamp_ms": garbage["timestamp_ms"],
        "value_base64": "AAFnYXJiYWdl",
        "dead_letters": [0],
    }
    assert (letter["error"], letter["source_partition"], letter["key"]) == (UNMAPPED, 7, "STORE_9")
    assert (odd["error"], odd["source_offset"], odd["failed_at"]) == (
        "\ufffd\ufffd not utf-8",
        None,
        None,
    )
    assert odd["key"] == "0xfffe"
    assert data["by_class"] == {"unknown": 1, "unroutable": 1, "decode": 1}
    assert [r["offset"] for r in listing(capsys, config, "--class", "unknown")["records"]] == [0]
    assert [r["offset"] for r in listing(capsys, config, "--reason", "store_9")["records"]] == [1]

    code, out, _ = run(capsys, config, "show", "0")
    assert code == 0
    assert "error:          unknown\n" in out
    assert "payload (hex, 9 bytes):\n0000  00 01 67 61 72 62 61 67 65" in out
    assert out.endswith("re-drives:\n  never re-driven\n")
    code, out, _ = run(capsys, config, "show", "1", "--json")
    shown = json.loads(out)
    assert shown["payload"]["form"] == "VarianceLogged.v2"
    assert shown["payload"]["data"]["event_id"] == "odd-1"
    assert ["trace-id", "abc"] in shown["headers"]

    code, out, err = run(capsys, config, "redrive", "--execute", "--offset", "1", "9")
    assert (code, out) == (2, "")
    assert err == (
        "variance-sync: error: no record at offset 9 in variance-sync.dlq (it holds offsets 0-2)\n"
    )
    code, out, _ = run(capsys, config, "redrive")
    assert out == (
        "skipping 0: source topic unknown is not an input\n"
        "skipping 2: source topic somewhere.else is not an input\n"
        f"would re-drive 1 -> {VARIANCE_TOPIC}[by key]: unroutable: {UNMAPPED}\n"
        "dry run: 1 to re-drive; nothing sent (--execute sends them)\n"
    )
    assert listing(capsys, config)["records"][1]["redrives"] == []

    code, out, _ = run(capsys, config, "redrive", "--execute", "--class", "unroutable")
    assert code == 0
    [redrive] = listing(capsys, config)["records"][1]["redrives"]
    assert out == (
        f"re-drove 1 -> {VARIANCE_TOPIC}[{redrive['target_partition']}]@"
        f"{redrive['target_offset']}\nre-drove 1 record(s)\n"
    )
    sent = asyncio.run(
        read_back(
            broker.bootstrap, VARIANCE_TOPIC, redrive["target_partition"], redrive["target_offset"]
        )
    )
    original = worker_letter()
    assert (sent.key, sent.value) == (original.record.key, original.record.value)
    assert [(k, bytes(v)) for k, v in sent.headers] == [
        (name, value.encode()) for name, value in letter["headers"]
    ]

    code, out, _ = run(capsys, config, "redrive", "--execute", "--offset", "1")
    assert out == "skipping already re-driven 1 (--again sends them again)\nnothing to re-drive\n"
    code, out, _ = run(capsys, config, "redrive", "--execute", "--offset", "1", "--again")
    assert out.startswith("re-drove 1 -> ")
    assert len(listing(capsys, config)["records"][1]["redrives"]) == 2
    code, out, _ = run(capsys, config, "show", "1")
    assert out.count(f" -> {VARIANCE_TOPIC}[") == 2
