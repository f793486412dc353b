"""Two workers of one group on a live broker: `/metrics` sums correctly across them.

Each input partition's lag and status come from exactly one worker (the one holding it,
and no longer from one it was revoked from), their sum is the group's lag as the broker
reports it, and the publish histograms count every published row once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sinks.feeds import ADJUSTMENT
from streams.config import KafkaConfig, load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import TopicNames
from streams.kafka.offsets import OffsetReader
from tests.fixtures.broker import broker
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.test_lag import write_config
from tests.integration.test_pipeline_e2e import publish_variances

__all__ = ["broker"]

Partition = tuple[str, int]
FEED = ADJUSTMENT.name  # where publish_variances' rows go


def scrape(worker: WorkerProcess) -> list[Sample]:
    status, text = worker.text("/metrics")
    assert status == 200
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def by_partition(samples: list[Sample], name: str) -> dict[Partition, float]:
    return {
        (s.labels["topic"], int(s.labels["partition"])): s.value for s in samples if s.name == name
    }


def summed(workers: Sequence[WorkerProcess], name: str) -> float:
    return sum(
        s.value for w in workers for s in scrape(w) if s.name == name and s.labels["feed"] == FEED
    )


async def broker_lag(kafka: KafkaConfig, inputs: Sequence[str]) -> dict[Partition, int]:
    """End offset minus committed offset (the log start where nothing is committed)."""
    async with OffsetReader(kafka) as reader:
        tps: list[TopicPartition] = await reader.partitions_of(inputs)
        committed = await reader.committed(kafka.group_id, tps)
        ends = await reader.high_watermarks(tps)
        starts = await reader.log_starts(tps)
    return {
        (tp.topic, tp.partition): ends[tp] - (c if (c := committed[tp]) is not None else starts[tp])
        for tp in tps
    }


def test_two_workers_export_each_partition_once_and_sum_to_the_group_lag(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config = write_config(tmp_path, broker)
    kafka = load_settings(config).kafka
    inputs = TopicNames.from_config(kafka).inputs
    everything = {(topic, p) for topic in inputs for p in range(kafka.partitions)}
    first, second = (
        WorkerProcess(config, tmp_path / f"worker-{n}.log", data_dir=tmp_path / f"worker-{n}")
        for n in (1, 2)
    )
    workers = (first, second)
    try:
        # The first worker holds every partition, then gives half of them up: the series of
        # those must leave its /metrics, or the sum would count them twice.
        first.start().wait_ready()
        wait_for(
            lambda: set(by_partition(scrape(first), "variance_sync_consumer_lag")) == everything,
            30,
            "the first worker to export every partition",
            first,
        )
        second.start().wait_ready()

        def split() -> bool:
            held = [set(by_partition(scrape(w), "variance_sync_partition_status")) for w in workers]
            return all(held) and not held[0] & held[1] and held[0] | held[1] == everything

        wait_for(split, 60, "each partition to be exported by exactly one worker", *workers)

        asyncio.run(publish_variances(broker.bootstrap, "landed", 8))
        wait_for(
            lambda: summed(workers, "variance_sync_event_to_csv_seconds_count") == 8,
            60,
            "every published row to be observed once",
            *workers,
        )
        files = summed(workers, "variance_sync_files_published_total")
        assert files >= 1
        assert summed(workers, "variance_sync_publish_duration_seconds_count") >= files
        assert summed(workers, "variance_sync_event_to_csv_seconds_sum") > 0
        wait_for(
            lambda: not any(asyncio.run(broker_lag(kafka, inputs)).values()),
            30,
            "the group to commit what it published",
            *workers,
        )

        # Nothing can be published now, so nothing is committed: the lag holds still.
        (tmp_path / "netsuite").rename(tmp_path / "netsuite-away")
        asyncio.run(publish_variances(broker.bootstrap, "held", 12))
        expected = asyncio.run(broker_lag(kafka, inputs))
        assert sum(expected.values()) == 12

        def exported() -> list[dict[Partition, float]]:
            return [by_partition(scrape(w), "variance_sync_consumer_lag") for w in workers]

        def merged() -> dict[Partition, float]:
            return {key: value for series in exported() for key, value in series.items()}

        wait_for(lambda: merged() == expected, 30, "the exported lag to be the broker's", *workers)
        shares = exported()
        assert not set(shares[0]) & set(shares[1])
        assert set(shares[0]) | set(shares[1]) == everything
        assert sum(v for share in shares for v in share.values()) == sum(expected.values())
        for worker in workers:
            text = worker.text("/metrics")[1]
            assert "variance_sync_faust" not in text
            assert "variance_sync_group_status" not in text
    finally:
        for worker in workers:
            worker.stop()
