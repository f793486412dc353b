"""The Faust tables, each backed by a changelog topic.

- `inventory`: "facility/product" -> position (see `streams.core.positions`).
- `progress`: "topic:partition" -> how far that input partition is fully processed, and
  its dead letters (see `streams.core.progress`).

Both live on the changelog partition numbered like the input partition they describe, so
a facility's state moves with its events. Faust still creates, recovers and serves them;
writing is ours (`streams.worker.changelog_writer`), in the same bytes on the same partitions as
Faust's own, with one difference that matters: **a write reaches the local store only
after the broker has acknowledged its changelog record.** Until then it waits in memory
(and reads see it), so a worker killed at any moment restarts on a RocksDB folder that is
a prefix of its changelog, and Faust's recovery from the store's persisted offset brings
it to exactly what any other worker would recover (docs/table-protocol.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import faust
import orjson
from aiokafka.structs import TopicPartition
from faust.types import TP

from sinks.source_partition import SourcePartition
from streams.core.analytics_totals import AnalyticsTotals
from streams.core.progress import Progress, progress_key
from streams.errors import StreamsError
from streams.kafka.broker import INVENTORY_TABLE, PROGRESS_TABLE
from streams.worker.changelog_writer import ChangelogWriter, Persisted
from streams.worker.table_totals import observe, track_actives


class TableStopped(StreamsError):
    """The worker is stopping and the table's store is closing: a read now would find
    nothing (RocksDB's closed store answers "missing"), so it is refused."""


class ChangelogTable(Protocol):
    """A table as the worker writes it: reads see unacknowledged writes, and writes that a
    failed flush lost can be forgotten."""

    def get(self, key: Any, default: Any = None) -> Any: ...

    def put(self, key: Any, value: Any, partition: int) -> None: ...

    def forget_unwritten(self, partition: int) -> None: ...


_DELETED = object()  # a deletion waiting for its changelog ack
_MISSING = object()


def _dumps(value: Any) -> bytes:
    # The bytes the tables' Faust "json" codec writes, as Faust also uses orjson when it
    # is installed (and recovers with it). The standard library's encoder took 6 % of the
    # worker's time under load; orjson encodes a position about 16 times faster.
    return orjson.dumps(value)


@dataclass(frozen=True, slots=True)
class _Message:
    """The parts of a Faust changelog message that the stores' batch apply reads."""

    tp: TP
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class _ChangelogEvent:
    key: Any  # decoded, for the memory store
    value: Any
    message: _Message


class WrittenThroughTable(faust.Table[str, Any]):
    """A Faust table that writes to its store only what its changelog acknowledged.

    Key TTLs and Faust's per-key table sensors are not used by these tables, so reads
    and writes skip them.
    """

    writer: ChangelogWriter  # set by `register_tables` before the table is used
    inputs: frozenset[str]  # the input topics, whose partition numbers this table follows
    # Running analytics of what the store holds (`streams.worker.table_totals`), if kept.
    totals: AnalyticsTotals | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # key -> (write sequence, value or _DELETED, changelog partition), for writes not
        # yet acknowledged.
        self._unacked: dict[Any, tuple[int, Any, int]] = {}
        self._sequence = 0

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        # Before the first table's claim reopens them, for every table: a partition kept
        # through a rejoin is not in `revoked`, and Faust leaves its table as it was.
        for table in self.app.tables.values():
            if isinstance(table, WrittenThroughTable):
                table.forget_unclaimed()
        # Before recovery starts: claiming a partition fences its earlier owner, so that
        # recovery reads everything that owner will ever have written.
        await self.writer.claim({tp.partition for tp in assigned if tp.topic in self.inputs})
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if self.totals is not None:
            await track_actives(self.totals, self.data, self.active_partitions())

    def active_partitions(self) -> set[int]:
        """The changelog partitions this worker serves (not its standbys)."""
        actives = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.changelog_topic_name}

    def apply_changelog_batch(self, batch: Any) -> None:
        # The one place the store changes: recovery and our acknowledged writes.
        if self.totals is not None:
            observe(self.totals, self.data, batch, (self._to_key, self._to_value))
        super().apply_changelog_batch(batch)

    def forget_unwritten(self, partition: int) -> None:
        """Drop writes on changelog `partition` that no flush made durable (it failed):
        reads see the store again, which holds what the changelog holds."""
        for key in [key for key, (_, _, p) in self._unacked.items() if p == partition]:
            del self._unacked[key]

    def forget_unclaimed(self) -> None:
        """Drop writes on changelog partitions that the writer does not hold open: none of
        them will ever be acknowledged. A partition released at a revoke while its flush
        failed or was cut short (its leader away) left them here, and ingest is not told
        of that flush; were the partition assigned here again, reads would see writes the
        changelog never got, and a re-delivered event would be taken for applied."""
        for partition in {p for _, _, p in self._unacked.values()}:
            if not self.writer.claimed(partition):
                self.forget_unwritten(partition)

    @property
    def unacked_writes(self) -> int:
        return len(self._unacked)

    def get(self, key: Any, default: Any = None) -> Any:
        # Faust's `get` goes through `__getitem__`: a sensor call, two store lookups, and
        # a KeyError for every missing key, the common case for new positions.
        waiting = self._unacked.get(key)
        if waiting is not None:
            return default if waiting[1] is _DELETED else waiting[1]
        if self.should_stop:
            # Faust stops the tables (and closes their stores) before the agent: an event
            # still in flight must not take "missing" for a fresh position and write it.
            raise TableStopped(f"table {self.name} is stopping")
        return self.data.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value, self._event_partition())

    def __delitem__(self, key: Any) -> None:
        self.put(key, _DELETED, self._event_partition())

    def put(self, key: Any, value: Any, partition: int) -> None:
        """Write `key` on changelog `partition`; outside stream iteration too."""
        sequence = self._sequence + 1
        data = None if value is _DELETED else _dumps(value)
        tag = (key, value, sequence)
        self.writer.append(self.changelog_topic_name, partition, _dumps(key), data, tag)
        self._sequence = sequence
        self._unacked[key] = (sequence, value, partition)

    def _event_partition(self) -> int:
        partition = self.partition_for_key(None)  # the current event's, as Faust's own
        if partition is None:
            raise RuntimeError(f"table {self.name} must not use the producer's partitioner")
        return partition

    def on_persisted(self, tp: TopicPartition, records: Sequence[Persisted]) -> None:
        """The broker acknowledged `records`: apply them to the store, as recovery would."""
        topic = TP(tp.topic, tp.partition)
        events = []
        for record in records:
            key, value, sequence = record.tag
            stored = None if value is _DELETED else value
            message = _Message(topic, tp.partition, record.offset, record.key, record.value)
            events.append(_ChangelogEvent(key, stored, message))
            if self._unacked.get(key, (None,))[0] == sequence:
                del self._unacked[key]
        # The store's own batch apply, as in recovery; for RocksDB it also records the
        # persisted offset that the next start recovers from.
        batch: Any = events  # what the stores read of Faust's events, and nothing more
        self.apply_changelog_batch(batch)


class TableProgress:
    """The progress table as `streams.core.pending.ProgressStore`."""

    def __init__(self, table: ChangelogTable) -> None:
        self._table = table

    def load(self, source: SourcePartition) -> Progress | None:
        data = self._table.get(progress_key(source))
        return None if data is None else Progress.from_json(data)

    def save(self, source: SourcePartition, progress: Progress) -> None:
        self._table.put(progress_key(source), progress.to_json(), source.partition)


def register_tables(
    app: faust.App, partitions: int, writer: ChangelogWriter, inputs: Sequence[str] = ()
) -> tuple[WrittenThroughTable, WrittenThroughTable]:
    # value_type None, not `dict`: Faust decodes stored and recovered values with
    # `value_type.from_data`, which `dict` lacks, so the RocksDB store and every changelog
    # recovery would crash. None keeps the JSON encoding and hands back the plain dict.
    inventory = _table(
        app,
        writer,
        inputs,
        INVENTORY_TABLE,
        partitions,
        help="Applied inventory position per facility and product.",
    )
    inventory.totals = AnalyticsTotals()
    progress = _table(
        app,
        writer,
        inputs,
        PROGRESS_TABLE,
        partitions,
        help="Per input partition: the fully processed floor and its dead letters.",
    )
    return inventory, progress


def _table(
    app: faust.App,
    writer: ChangelogWriter,
    inputs: Sequence[str],
    name: str,
    partitions: int,
    **options: Any,
) -> WrittenThroughTable:
    table = WrittenThroughTable(
        app,
        name=name,
        partitions=partitions,
        key_type=str,
        value_type=None,
        beacon=app.tables.beacon,
        **options,
    )
    table.writer = writer
    table.inputs = frozenset(inputs)
    writer.register(table.changelog_topic_name, table.on_persisted)
    app.tables.add(table)
    return table
