"""Reading topics to their true end, and Faust changelogs back into tables.

Faust writes both of our tables' changelogs as JSON: it picks its "json" codec for
`key_type=str`, so a key is a JSON string (`"STORE_1/10017"`), and the value is JSON (a
position, or a partition's progress). Deleting a key writes a
record with a null value. The changelog topic is `<app id>-<table>-changelog`, and the app
id is `kafka.group_id`.

A fresh worker replays each partition from its log start, last value per key winning, and
stops at the ListOffsets end offset. Tansu answers ListOffsets wrongly when the last record
batch holds more than one record (DESIGN section 9), so everything here reads to the high
watermark of Fetch responses instead, and keeps the ListOffsets answer only to say where
Faust's own recovery would stop.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from streams.config import WorkerConfig
from streams.errors import UsageError
from streams.kafka.broker import (
    TABLES,
    BrokerError,
)
from streams.kafka.offsets import FETCH_TIMEOUT, OffsetReader, tp_label


def tables_dir(data_dir: Path) -> Path:
    # Faust keeps tables in `tabledir` ("tables") under `appdir` (`datadir/v<version>`),
    # and our app keeps Faust's default version, 1.
    return data_dir / "v1" / "tables"


def local_state(worker: WorkerConfig) -> list[Path]:
    """Our tables' RocksDB folders: one `<table>-<partition>.db` per partition, and the
    `<table>-backups` folder that Faust's RocksDB store creates beside them."""
    folder = tables_dir(worker.data_dir)
    if worker.store != "rocksdb" or not folder.is_dir():
        return []
    names = "|".join(re.escape(table) for table in TABLES)
    pattern = re.compile(rf"(?:{names})-(?:[0-9]+\.db|backups)")
    return sorted(path for path in folder.iterdir() if pattern.fullmatch(path.name))


def held_by_another_process(folder: Path) -> bool:
    """Whether a running RocksDB (a worker) has this database open: it holds a POSIX
    write lock on the `LOCK` file for as long as the database is open."""
    lock = folder / "LOCK"
    if not lock.is_file():
        return False
    with lock.open("rb+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return False


def drop_local_state(worker: WorkerConfig) -> list[Path]:
    removed = local_state(worker)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return [path.absolute() for path in removed]


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """One changelog partition: what was read, and where each offset answer says it ends."""

    topic: str
    partition: int
    log_start: int
    high_watermark: int  # from Fetch responses: the true end, and where reading stopped
    list_offsets_end: int  # from ListOffsets: where a recovering Faust worker stops
    records: int

    @property
    def guard_tripped(self) -> bool:
        # Only "too small" counts: ListOffsets is asked after the high watermark, so on a
        # correct broker a worker writing in between can only make it larger.
        return self.list_offsets_end < self.high_watermark

    @property
    def at_risk(self) -> int:
        """Records past the ListOffsets end, which Faust's recovery would not replay."""
        return max(0, self.high_watermark - self.list_offsets_end)


@dataclass
class RebuiltTable:
    """A table as a fresh worker would rebuild it from a complete changelog read."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    # The changelog partition of each key's latest record: the partition of the input
    # events that wrote it, which is how positions are tied back to input partitions.
    partition_of: dict[str, int] = field(default_factory=dict)
    partitions: list[PartitionRead] = field(default_factory=list)

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        decoded = _decode(key, self.name, partition, offset)
        if not isinstance(decoded, str):
            raise UsageError(
                f"{self.name} changelog[{partition}]@{offset}: key {decoded!r} is not a string"
            )
        if value is None:
            self.values.pop(decoded, None)
            self.partition_of.pop(decoded, None)
            return
        self.values[decoded] = _decode(value, self.name, partition, offset)
        self.partition_of[decoded] = partition

    @property
    def tripped(self) -> list[PartitionRead]:
        return [read for read in self.partitions if read.guard_tripped]


def _decode(raw: bytes | None, table: str, partition: int, offset: int) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        # A worker would fail on this record too; an operator has to look at it.
        raise UsageError(
            f"{table} changelog[{partition}]@{offset}: not a JSON record as Faust writes them"
        ) from None


async def read_changelogs(reader: OffsetReader, topics: Mapping[str, str]) -> list[RebuiltTable]:
    """Each table (name -> changelog topic) from its log start to its Fetch high watermark.

    Every high watermark is taken before any record is read, so that while workers run the
    tables are cut at nearly one moment, however long reading them takes.
    """
    tps = await reader.partitions_of(topics.values())
    starts = await reader.log_starts(tps)
    marks = await reader.high_watermarks(tps)
    ends: Mapping[TopicPartition, int] = await reader.consumer.end_offsets(tps)
    tables = {topic: RebuiltTable(name) for name, topic in topics.items()}
    counts: Counter[TopicPartition] = Counter()
    async for record in scan(reader, {tp: (starts[tp], marks[tp]) for tp in tps}):
        tables[record.topic].apply(record.partition, record.offset, record.key, record.value)
        counts[TopicPartition(record.topic, record.partition)] += 1
    for tp in tps:
        read = PartitionRead(tp.topic, tp.partition, starts[tp], marks[tp], ends[tp], counts[tp])
        tables[tp.topic].partitions.append(read)
    return list(tables.values())


async def scan(
    reader: OffsetReader, ranges: Mapping[TopicPartition, tuple[int, int]]
) -> AsyncIterator[Any]:
    """Every record in [start, end) of each partition, in offset order per partition."""
    consumer = reader.consumer
    pending = {tp: end for tp, (start, end) in ranges.items() if start < end}
    reader.assign(list(pending))
    for tp in pending:
        consumer.seek(tp, ranges[tp][0])
    deadline = time.monotonic() + FETCH_TIMEOUT
    while pending:
        if time.monotonic() > deadline:
            stuck = ", ".join(f"{tp_label(tp)} before offset {end}" for tp, end in pending.items())
            raise BrokerError(f"reading stopped short: {stuck}")
        batch = await consumer.getmany(*pending, timeout_ms=200)
        for tp, records in batch.items():
            for record in records:
                if record.offset < pending[tp]:
                    yield record
            deadline = time.monotonic() + FETCH_TIMEOUT
        # The position, not the last offset seen, says when a partition is done: compacted
        # topics have gaps in their offsets.
        for tp in list(pending):
            if await consumer.position(tp) >= pending[tp]:
                consumer.pause(tp)
                del pending[tp]
