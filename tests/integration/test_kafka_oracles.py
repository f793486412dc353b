"""Apache Kafka's own tools as oracles, from the same jars as the broker: for one group
and its topics, `variance-sync lag` must agree with `kafka-consumer-groups --describe`,
and `variance-sync replay` dry-run plans with `kafka-consumer-groups --reset-offsets
--dry-run`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from streams.cli import main
from streams.config import KafkaConfig
from streams.devstack.local_kafka import KafkaBroker
from streams.kafka.broker import prepare_broker
from streams.kafka.offsets import OffsetReader
from tests.factories import write_config

TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
GROUP = "oracle"
TOPICS = ("hotwax.inventory.count-approved", "hotwax.inventory.variance-logged")
BASE_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
# Records per (topic, partition), stamped BASE + 1 s apart; and what the group committed.
SIZES = {(TOPICS[0], 0): 7, (TOPICS[0], 2): 3, (TOPICS[1], 1): 12, (TOPICS[1], 3): 5}
COMMITTED = {(TOPICS[0], 0): 7, (TOPICS[0], 2): 1, (TOPICS[1], 1): 4, (TOPICS[1], 3): 0}


async def stage(bootstrap: str) -> None:
    kafka = KafkaConfig(bootstrap=bootstrap)
    await prepare_broker(kafka)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for (topic, partition), size in SIZES.items():
            for n in range(size):
                stamp = BASE_MS + n * 1000
                await producer.send_and_wait(
                    topic, b"x", key=b"k", partition=partition, timestamp_ms=stamp
                )
    finally:
        await producer.stop()
    async with OffsetReader(kafka) as reader:
        offsets = {TopicPartition(t, p): o for (t, p), o in COMMITTED.items()}
        await reader.commit(GROUP, offsets)


def table(output: str, columns: tuple[str, ...]) -> dict[tuple[str, int], dict[str, str]]:
    """The tool's whitespace-aligned table, by (topic, partition)."""
    rows: dict[tuple[str, int], dict[str, str]] = {}
    header: list[str] | None = None
    for line in output.splitlines():
        cells = line.split()
        if cells[:1] == ["GROUP"]:
            header = cells
        elif header is not None and len(cells) >= len(columns) and cells[0] == GROUP:
            row = dict(zip(header, cells, strict=False))
            rows[(row["TOPIC"], int(row["PARTITION"]))] = {c: row[c] for c in columns}
    return rows


@pytest.fixture
def staged(kafka_broker: KafkaBroker, tmp_path: Path) -> Path:
    asyncio.run(stage(kafka_broker.bootstrap))
    return write_config(tmp_path, f'\n[kafka]\nbootstrap = "{kafka_broker.bootstrap}"\n')


def test_lag_agrees_with_kafka_consumer_groups_describe(
    kafka_broker: KafkaBroker, staged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    described = kafka_broker.tool(
        TOOL, "--bootstrap-server", kafka_broker.bootstrap, "--describe", "--group", GROUP
    )
    theirs = table(described, ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"))
    assert set(theirs) == set(COMMITTED), described
    code = main(["lag", "--config", str(staged), "--group", GROUP, "--json", "--samples", "1"])
    report = json.loads(capsys.readouterr().out)[0]
    assert code in (0, 1, 2)  # the status judges ages; the figures are what is compared
    ours = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    for key, row in theirs.items():
        mine = ours[key]
        assert (str(mine["committed"]), str(mine["high_watermark"]), str(mine["lag"])) == (
            row["CURRENT-OFFSET"],
            row["LOG-END-OFFSET"],
            row["LAG"],
        ), key
    # Partitions the group never committed: the tool leaves them out; we show no offset.
    for key in set(ours) - set(theirs):
        assert ours[key]["committed"] is None


@pytest.mark.parametrize(
    "moment",
    ["2023-11-14T22:13:22.500Z", "2023-11-14T22:13:20.000Z", "2023-11-14T22:14:00.000Z"],
)
def test_replay_plans_agree_with_kafka_consumer_groups_reset_offsets(
    kafka_broker: KafkaBroker, staged: Path, capsys: pytest.CaptureFixture[str], moment: str
) -> None:
    for topic in TOPICS:
        planned = kafka_broker.tool(
            TOOL,
            "--bootstrap-server",
            kafka_broker.bootstrap,
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            topic,
            "--to-datetime",
            moment,
            "--dry-run",
        )
        theirs = table(planned, ("NEW-OFFSET",))
        argv = ["replay", "--config", str(staged), "--group", GROUP, "--topic", topic]
        code = main([*argv, "--to-datetime", moment, "--json"])
        assert code == 0
        plan = json.loads(capsys.readouterr().out)
        ours = {(topic, p["partition"]): p["new"] for p in plan["partitions"]}
        assert {key: int(row["NEW-OFFSET"]) for key, row in theirs.items()} == ours, planned
