"""Sampling a group's lag and reporting it with the batch health that the status topic
holds (`streams.kafka.status_log`): shared by `variance-sync lag` and the worker's `/lag`
view and metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import TopicPartition

from streams.core.batch_status import BatchHealth
from streams.core.lag_status import LagHistory, LagPolicy, Sample, Status, worst
from streams.kafka.offsets import OffsetReader


async def sample_group(
    reader: OffsetReader, group: str, tps: Sequence[TopicPartition]
) -> dict[tuple[str, int], Sample]:
    committed = await reader.committed(group, tps)
    starts = await reader.log_starts(tps)
    marks = await reader.high_watermarks(tps)
    at = time.time()
    samples = {}
    for tp in tps:
        committed_at = committed[tp]
        position = committed_at if committed_at is not None else starts[tp]
        oldest = None
        if marks[tp] > position:
            record = await reader.record_at(tp, position)
            oldest = record.timestamp_ms if record is not None else None
        samples[(tp.topic, tp.partition)] = Sample(at, committed[tp], marks[tp], starts[tp], oldest)
    return samples


@dataclass(frozen=True)
class GroupReport:
    group: str
    partitions: dict[tuple[str, int], Sample]
    statuses: dict[tuple[str, int], Status]
    batches: BatchHealth
    feeds: tuple[str, ...]

    @property
    def status(self) -> Status:
        return worst(self.statuses.values())

    def to_json(self) -> dict[str, Any]:
        partitions = [
            {
                "topic": topic,
                "partition": partition,
                "committed": sample.committed,
                "high_watermark": sample.high_watermark,
                "lag": sample.lag,
                "oldest_unconsumed_age_seconds": _round(sample.oldest_age),
                "status": self.statuses[(topic, partition)].name,
            }
            for (topic, partition), sample in sorted(self.partitions.items())
        ]
        batches = self.batches
        return {
            "group": self.group,
            "status": self.status.name,
            "partitions": partitions,
            "batches": {
                "workers": [w.worker for w in batches.workers],
                "open": [
                    {"worker": worker, **_batch_json(batch)}
                    for worker, batch in batches.open_batches
                ],
                "oldest_unpublished_age_seconds": _round(batches.oldest_unpublished_age),
                "last_publish": batches.last_publish(self.feeds),
                "errors": batches.errors,
                "failing_writers": [
                    {"worker": worker, **asdict(writer)}
                    for worker, writer in batches.failing_writers
                ],
                "halted_partitions": [
                    {"worker": worker, **asdict(halt)} for worker, halt in batches.halted_partitions
                ],
            },
        }


def build_report(
    group: str, history: LagHistory, policy: LagPolicy, batches: BatchHealth, feeds: Sequence[str]
) -> GroupReport:
    statuses = history.statuses(policy)
    for _, writer in batches.failing_writers:
        key = (writer.topic, writer.partition)
        if writer.state == "parked" and key in statuses:
            # Its offsets cannot move until an operator acts: say so now, not in a while.
            statuses[key] = max(statuses[key], Status.STALL)
    for _, halt in batches.halted_partitions:
        for key in statuses:
            if key[1] == halt.partition:
                # Stopped on an error: nothing moves until the cause is gone.
                statuses[key] = Status.STOP
    return GroupReport(group, history.latest(), statuses, batches, tuple(feeds))


def _batch_json(batch: Any) -> dict[str, Any]:
    return {
        "feed": batch.feed,
        "topic": batch.topic,
        "partition": batch.partition,
        "rows": batch.rows,
        "first_offset": batch.first_offset,
        "age_seconds": _round(batch.age_seconds),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
