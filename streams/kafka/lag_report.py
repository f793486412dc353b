"""Sampling a group's lag and reading batch health: shared by `variance-sync lag` and the
worker's `/lag` view and metrics; and `StatusLog`, the worker's running read of the status
topic that the group console (`/group`, `/lag/history`) is built from."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import TopicPartition

from streams.core.batch_status import BatchHealth, latest_per_worker
from streams.core.group_view import FORGET_AFTER, HISTORY_SPAN, StatusRecords
from streams.core.lag_status import LagHistory, LagPolicy, Sample, Status, worst
from streams.kafka.offsets import OffsetReader

STATUS_TAIL = 500  # snapshots read back from the status topic; many per live worker
# Workers report every 5 s: one silent for three reports is gone (killed, or cut off).
STATUS_MAX_AGE = 15.0
STATUS_STEP = 2000  # records read per monitor tick at most: a long backlog costs ticks, not one


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


async def read_batch_health(reader: OffsetReader, status_topic: str) -> BatchHealth:
    tp = TopicPartition(status_topic, 0)
    end = (await reader.high_watermarks([tp]))[tp]
    start = max((await reader.log_starts([tp]))[tp], end - STATUS_TAIL)
    records = await reader.records(tp, start, end)
    now = time.time()
    workers = latest_per_worker((r.value for r in records if r.value), now, STATUS_MAX_AGE)
    return BatchHealth(workers=workers, at=now)


class StatusLog:
    """The status topic's last hour, read forward from where the last call stopped. A worker
    that starts reads back from the first record of the last hour (the topic stamps records
    on arrival, so their times grow with offsets), so its history is the group's, not
    its own since it started."""

    def __init__(self, topic: str, step: int = STATUS_STEP) -> None:
        self._tp = TopicPartition(topic, 0)
        self._step = step
        self._next: int | None = None
        self.records = StatusRecords()

    async def catch_up(self, reader: OffsetReader) -> None:
        tp = self._tp
        now = time.time()
        start = (await reader.log_starts([tp]))[tp]
        end = (await reader.high_watermarks([tp]))[tp]
        if self._next is None or self._next < start:
            back = max(HISTORY_SPAN, FORGET_AFTER)
            self._next = await reader.offset_for_time(tp, int((now - back) * 1000), start, end)
        stop = min(end, self._next + self._step)
        if stop > self._next:
            for record in await reader.records(tp, self._next, stop):
                self.records.add(record.key, record.value)
            self._next = stop
        self.records.prune(now)


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
