"""Reading the status topic, where every worker writes its snapshots: the batch health of
the workers alive now (`read_batch_health`, for `lag` and `/lag`) and `StatusLog`, the
worker's running read of the last hour that the group console (`/group`,
`/lag/history`) is built from."""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from streams.core.batch_status import BatchHealth, latest_per_worker
from streams.core.group_view import FORGET_AFTER, HISTORY_SPAN, StatusRecords
from streams.kafka.offsets import OffsetReader

STATUS_TAIL = 500  # snapshots read back from the status topic; many per live worker
# Workers report every 5 s: one silent for three reports is gone (killed, or cut off).
STATUS_MAX_AGE = 15.0
STATUS_STEP = 2000  # records read per monitor tick at most: a long backlog costs ticks, not one


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
