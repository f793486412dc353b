"""The Faust tables, each backed by a changelog topic.

- `inventory`: "facility/product" -> position (see `streams.positions`).
- `seen-events`: event id -> "topic:partition:offset" of its first copy, so a producer's
  duplicate is told apart from Faust re-delivering the same record after a rebalance.

Both are written only while the ingest agent processes an event, so their changelog
records land on that event's partition, next to the facility's other state. Faust still
stores, recovers and serves them; only producing their changelog records is ours
(`streams.changelog_writer`), in the same bytes on the same partitions.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from aiokafka.structs import TopicPartition
from faust.types import TP

from streams.changelog_writer import ChangelogWriter

INVENTORY_TABLE = "inventory"
SEEN_TABLE = "seen-events"


def _dumps(value: Any) -> bytes:
    # The bytes the tables' Faust "json" codec writes, as Faust also uses orjson when it
    # is installed (and recovers with it). The standard library's encoder took 6 % of the
    # worker's time under load; orjson encodes a position about 16 times faster.
    return orjson.dumps(value)


class WrittenThroughTable(faust.Table[str, Any]):
    """A Faust table whose changelog records go through a `ChangelogWriter`.

    Key TTLs and Faust's per-key table sensors are not used by these tables, so reads
    and writes skip them.
    """

    writer: ChangelogWriter  # set by `register_tables` before the table is used

    def get(self, key: Any, default: Any = None) -> Any:
        # Faust's `get` goes through `__getitem__`: a sensor call, two store lookups, and
        # a KeyError for every missing key, the common case for new positions and events.
        return self.data.get(key, default)

    def on_key_set(self, key: Any, value: Any) -> None:
        self._append(key, _dumps(value))

    def on_key_del(self, key: Any) -> None:
        self._append(key, None)

    def _append(self, key: Any, value: bytes | None) -> None:
        partition = self.partition_for_key(key)  # the current event's, as Faust's own
        if partition is None:
            raise RuntimeError(f"table {self.name} must not use the producer's partitioner")
        self.writer.append(self.changelog_topic_name, partition, _dumps(key), value)

    def on_persisted(self, tp: TopicPartition, offset: int) -> None:
        # What Faust's own send callback records: RocksDB recovers from here after a restart.
        self.data.set_persisted_offset(TP(tp.topic, tp.partition), offset)


def register_tables(app: faust.App, partitions: int, writer: ChangelogWriter) -> tuple[Any, Any]:
    inventory = _table(
        app,
        writer,
        INVENTORY_TABLE,
        partitions,
        # Not `dict`: Faust decodes stored and recovered values with `value_type.from_data`,
        # which `dict` lacks, so the RocksDB store and every changelog recovery would crash.
        # None keeps the JSON encoding and hands back the plain dict.
        value_type=None,
        help="Applied inventory position per facility and product.",
    )
    seen = _table(
        app,
        writer,
        SEEN_TABLE,
        partitions,
        value_type=str,
        help="Event id to the coordinates of its first copy.",
    )
    return inventory, seen


def _table(
    app: faust.App, writer: ChangelogWriter, name: str, partitions: int, **options: Any
) -> WrittenThroughTable:
    table = WrittenThroughTable(
        app, name=name, partitions=partitions, key_type=str, beacon=app.tables.beacon, **options
    )
    table.writer = writer
    writer.register(table.changelog_topic_name, table.on_persisted)
    app.tables.add(table)
    return table
