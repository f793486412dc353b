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

import json
from typing import Any

import faust
from aiokafka.structs import TopicPartition
from faust.types import TP

from streams.changelog_writer import ChangelogWriter

INVENTORY_TABLE = "inventory"
SEEN_TABLE = "seen-events"


# The tables' serializer is Faust's "json" codec, which decodes any JSON; its encoder
# built a new JSONEncoder for every record, one encoder serves them all.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


class WrittenThroughTable(faust.Table[str, Any]):
    """A Faust table whose changelog records go through a `ChangelogWriter`.

    Key TTLs and Faust's per-key table sensors are not used by these tables, so the
    writes skip them. Keys and values are JSON, as Faust's "json" codec writes them.
    """

    writer: ChangelogWriter | None = None

    def write_through(self, writer: ChangelogWriter) -> None:
        self.writer = writer
        writer.register(self.changelog_topic_name, self._on_persisted)

    def on_key_set(self, key: Any, value: Any) -> None:
        if self.writer is None:
            super().on_key_set(key, value)
            return
        self._append(self.writer, key, _dumps(value))

    def on_key_del(self, key: Any) -> None:
        if self.writer is None:
            super().on_key_del(key)
            return
        self._append(self.writer, key, None)

    def _append(self, writer: ChangelogWriter, key: Any, value: bytes | None) -> None:
        partition = self.partition_for_key(key)  # the current event's, as Faust's own
        if partition is None:
            raise RuntimeError(f"table {self.name} must not use the producer's partitioner")
        writer.append(self.changelog_topic_name, partition, _dumps(key), value)

    def _on_persisted(self, tp: TopicPartition, offset: int) -> None:
        # What Faust's own send callback records: RocksDB recovers from here after a restart.
        self.data.set_persisted_offset(TP(tp.topic, tp.partition), offset)


def register_tables(
    app: faust.App, partitions: int, writer: ChangelogWriter | None = None
) -> tuple[Any, Any]:
    inventory = _table(
        app,
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
        SEEN_TABLE,
        partitions,
        value_type=str,
        help="Event id to the coordinates of its first copy.",
    )
    if writer is not None:
        inventory.write_through(writer)
        seen.write_through(writer)
    return inventory, seen


def _table(app: faust.App, name: str, partitions: int, **options: Any) -> WrittenThroughTable:
    table = WrittenThroughTable(
        app, name=name, partitions=partitions, key_type=str, beacon=app.tables.beacon, **options
    )
    app.tables.add(table)
    return table
