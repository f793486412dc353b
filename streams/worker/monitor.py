"""The worker's own view of its group: lag, partition status and batch health.

Every `interval` seconds it publishes this worker's batch snapshot to the status topic,
samples the whole group's lag (every partition, not only this worker's), reads every
worker's latest snapshot back, and keeps the result for `/lag` and the metrics. It also
reads the status topic forward for the group console, and writes the group's lag sample
there when the current history bucket has none yet (`streams.core.group_view`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady
from prometheus_client import Gauge

from sinks.feeds import FEEDS
from streams import metrics
from streams.config import KafkaConfig
from streams.core.batch_status import (
    DeadLetterSummary,
    FailingWriter,
    HaltedPartition,
    HeldPartition,
    OpenBatch,
    WorkerStatus,
    WriterSnapshot,
    worker_id,
)
from streams.core.dead_letter_tally import DeadLetterTally
from streams.core.group_view import HISTORY_KEY, LagPoint, group_view, history_json, sample_due
from streams.core.lag_status import LagHistory, LagPolicy
from streams.core.pending import SourceRegistry
from streams.kafka.broker import BrokerError, TopicNames
from streams.kafka.dead_letter_counter import DeadLetterCounter
from streams.kafka.lag_report import GroupReport, build_report, sample_group
from streams.kafka.offsets import OffsetReader
from streams.kafka.status_log import StatusLog, read_batch_health
from streams.worker.publish_loop import PublishLoop

log = logging.getLogger(__name__)

OPEN_BATCHES = Gauge(
    "variance_sync_open_batches", "Batches waiting to be published on this worker.", ["feed"]
)

SendStatus = Callable[[bytes, bytes], Awaitable[None]]


def snapshot(
    sources: SourceRegistry,
    loop: PublishLoop,
    worker: str,
    *,
    dead_letters: DeadLetterTally | None = None,
    web: str | None = None,
) -> WorkerStatus:
    now = time.monotonic()
    batches = tuple(
        OpenBatch(
            feed.name, s.source.topic, s.source.partition, len(b), b.first_offset or 0, b.age(now)
        )
        for s in sources
        for feed, b in s.batchers.items()
        if len(b)
    )
    for feed in FEEDS:
        OPEN_BATCHES.labels(feed.name).set(sum(1 for b in batches if b.feed == feed.name))
    failing = tuple(
        FailingWriter(w.feed, w.topic, w.partition, w.state, w.error)
        for w in loop.writers()
        if w.error is not None
    )
    halted = tuple(
        HaltedPartition(partition, halt.offset, halt.reason, halt.since, halt.attempts)
        for partition, halt in sorted(sources.halts.items())
    )
    held = tuple(sorted(HeldPartition(s.source.topic, s.source.partition) for s in sources))
    writers = tuple(
        WriterSnapshot(w.feed, w.topic, w.partition, w.state, w.error, w.sealed)
        for w in loop.writers()
    )
    letters = (
        None
        if dead_letters is None
        else DeadLetterSummary(
            dead_letters.total, len(dead_letters.redriven), dict(dead_letters.by_class)
        )
    )
    return WorkerStatus(
        worker,
        time.time(),
        batches,
        dict(loop.last_publish),
        loop.last_error,
        failing,
        halted,
        partitions=held,
        writers=writers,
        dead_letters=letters,
        web=web,
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
        web: str | None = None,
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
        self._exported: set[metrics.Partition] = set()  # partitions with series on /metrics
        self._web = web
        self.status_log = StatusLog(self._topics.status)
        self._sampled_at: float | None = None  # this worker's last lag sample for history

    async def run(self) -> None:
        while True:
            try:
                async with OffsetReader(self._kafka) as reader:
                    await self._loop(reader)
            except (BrokerError, KafkaError, OSError, NotReady) as exc:
                # It only observes: a broker that is away, or a producer already stopped
                # while the worker stops, must not stop or crash the worker.
                log.warning("lag monitor: %s; retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(self._interval)

    async def _loop(self, reader: OffsetReader) -> None:
        tps = await reader.partitions_of(self._topics.inputs)
        while True:
            status = snapshot(
                self._sources,
                self._publish_loop,
                self.worker,
                dead_letters=self.dead_letters.tally,
                web=self._web,
            )
            await self._send_status(self.worker.encode(), status.to_bytes())
            samples = await sample_group(reader, self._kafka.group_id, tps)
            self._history.add(samples)
            await self._keep_history(reader, LagPoint.of(samples, time.time()))
            batches = await read_batch_health(reader, self._topics.status)
            await self.dead_letters.catch_up(reader)
            feeds = [feed.name for feed in FEEDS]
            self.report = build_report(
                self._kafka.group_id, self._history, self._policy, batches, feeds
            )
            self._export(tps)
            await asyncio.sleep(self._interval)

    def _export(self, tps: list[TopicPartition]) -> None:
        """Export the partitions this worker holds, and only those (docs/monitoring.md:
        a sum over workers is then the group's figure)."""
        report = self.report
        if report is None:
            return
        held = {(s.source.topic, s.source.partition) for s in self._sources}
        self.forget(metrics.stale_partitions(self._exported, held))
        sampled = [
            (tp.topic, tp.partition) for tp in tps if (tp.topic, tp.partition) in report.partitions
        ]
        for key in metrics.exported_partitions(sampled, held):
            sample = report.partitions[key]
            labels = (key[0], str(key[1]))
            metrics.LAG.labels(*labels).set(sample.lag)
            metrics.LAG_SECONDS.labels(*labels).set(sample.oldest_age or 0)
            metrics.STATUS.labels(*labels).set(int(report.statuses[key]))
            self._exported.add(key)

    def forget(self, partitions: list[metrics.Partition]) -> None:
        """Remove the series of partitions this worker no longer holds (on revocation, so
        that two workers never export one partition at once)."""
        metrics.remove_partitions(partitions)
        self._exported.difference_update(partitions)

    async def _keep_history(self, reader: OffsetReader, point: LagPoint) -> None:
        """One lag sample per history bucket for the whole group: written unless the topic
        (or this worker, a moment ago) already has one for the bucket; a race between
        workers writes two, and readers keep the earlier."""
        await self.status_log.catch_up(reader)
        seen = self.status_log.records.last_point_at
        last = max(filter(None, (seen, self._sampled_at)), default=None)
        if sample_due(last, point.at):
            await self._send_status(HISTORY_KEY, point.to_bytes())
            self._sampled_at = point.at

    def group_json(self, now: float) -> dict[str, Any]:
        """Every worker of the group and what it holds, from the status topic alone."""
        return {
            **group_view(self.status_log.records.statuses.values(), now),
            "lag": self.lag_json(),
        }

    def history_json(self, now: float) -> dict[str, Any]:
        return history_json(self.status_log.records.points, now)

    def lag_json(self) -> dict[str, Any]:
        if self.report is None:
            return {
                "group": self._kafka.group_id,
                "status": "UNKNOWN",
                "detail": "first sample pending",
            }
        return self.report.to_json()
