"""The worker's own view of its group: lag, partition status and batch health.

Every `interval` seconds it publishes this worker's batch snapshot to the status topic,
samples the whole group's lag (every partition, not only this worker's), reads every
worker's latest snapshot back, and keeps the result for `/lag` and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from sinks.feeds import Feed
from streams.config import KafkaConfig
from streams.core.batch_status import (
    FailingWriter,
    HaltedPartition,
    OpenBatch,
    WorkerStatus,
    worker_id,
)
from streams.core.lag_status import LagHistory, LagPolicy
from streams.core.pending import SourceRegistry
from streams.kafka.broker import BrokerError, TopicNames
from streams.kafka.dead_letter_counter import DeadLetterCounter
from streams.kafka.lag_report import GroupReport, build_report, read_batch_health, sample_group
from streams.kafka.offsets import OffsetReader
from streams.worker.publish_loop import PublishLoop

log = logging.getLogger(__name__)

LAG = Gauge(
    "variance_sync_consumer_lag", "Offset lag of the group per partition.", ["topic", "partition"]
)
LAG_SECONDS = Gauge(
    "variance_sync_consumer_lag_seconds",
    "Age of the oldest unconsumed event per partition (0 without lag).",
    ["topic", "partition"],
)
STATUS = Gauge(
    "variance_sync_partition_status",
    "0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, per partition.",
    ["topic", "partition"],
)
GROUP_STATUS = Gauge("variance_sync_group_status", "Worst partition status of the group.")
OPEN_BATCHES = Gauge(
    "variance_sync_open_batches", "Batches waiting to be published on this worker.", ["feed"]
)

SendStatus = Callable[[bytes, bytes], Awaitable[None]]


def snapshot(sources: SourceRegistry, loop: PublishLoop, worker: str) -> WorkerStatus:
    now = time.monotonic()
    batches = tuple(
        OpenBatch(
            feed.value, s.source.topic, s.source.partition, len(b), b.first_offset or 0, b.age(now)
        )
        for s in sources
        for feed, b in s.batchers.items()
        if len(b)
    )
    for feed in Feed:
        OPEN_BATCHES.labels(feed.value).set(sum(1 for b in batches if b.feed == feed.value))
    failing = tuple(
        FailingWriter(w.feed, w.topic, w.partition, w.state, w.error)
        for w in loop.writers()
        if w.error is not None
    )
    halted = tuple(
        HaltedPartition(partition, halt.offset, halt.reason, halt.since, halt.attempts)
        for partition, halt in sorted(sources.halts.items())
    )
    return WorkerStatus(
        worker, time.time(), batches, dict(loop.last_publish), loop.last_error, failing, halted
    )


class Monitor:
    def __init__(
        self,
        kafka: KafkaConfig,
        sources: SourceRegistry,
        publish_loop: PublishLoop,
        send_status: SendStatus,
        *,
        policy: LagPolicy,
        interval: float = 5.0,
    ) -> None:
        self._kafka = kafka
        self._topics = TopicNames.from_config(kafka)
        self._sources = sources
        self._publish_loop = publish_loop
        self._send_status = send_status
        self._policy = policy
        self._interval = interval
        self._history = LagHistory()
        self.worker = worker_id()
        self.report: GroupReport | None = None
        self.dead_letters = DeadLetterCounter(self._topics)

    async def run(self) -> None:
        while True:
            try:
                async with OffsetReader(self._kafka) as reader:
                    await self._loop(reader)
            except (BrokerError, KafkaError, OSError) as exc:
                # It only observes: a broker that is away must not stop the worker.
                log.warning("lag monitor: %s; retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(self._interval)

    async def _loop(self, reader: OffsetReader) -> None:
        tps = await reader.partitions_of(self._topics.inputs)
        while True:
            status = snapshot(self._sources, self._publish_loop, self.worker)
            await self._send_status(self.worker.encode(), status.to_bytes())
            self._history.add(await sample_group(reader, self._kafka.group_id, tps))
            batches = await read_batch_health(reader, self._topics.status)
            await self.dead_letters.catch_up(reader)
            feeds = [feed.value for feed in Feed]
            self.report = build_report(
                self._kafka.group_id, self._history, self._policy, batches, feeds
            )
            self._export(tps)
            await asyncio.sleep(self._interval)

    def _export(self, tps: list[TopicPartition]) -> None:
        report = self.report
        if report is None:
            return
        for tp in tps:
            key = (tp.topic, tp.partition)
            sample = report.partitions.get(key)
            if sample is None:
                continue
            labels = (tp.topic, str(tp.partition))
            LAG.labels(*labels).set(sample.lag)
            LAG_SECONDS.labels(*labels).set(sample.oldest_age or 0)
            STATUS.labels(*labels).set(int(report.statuses[key]))
        GROUP_STATUS.set(int(report.status))

    def lag_json(self) -> dict[str, Any]:
        if self.report is None:
            return {
                "group": self._kafka.group_id,
                "status": "UNKNOWN",
                "detail": "first sample pending",
            }
        return self.report.to_json()
