"""The Faust tables, each backed by a changelog topic.

- `inventory`: "facility/product" -> position (see `streams.positions`).
- `seen-events`: event id -> "topic:partition:offset" of its first copy, so a producer's
  duplicate is told apart from Faust re-delivering the same record after a rebalance.

Both are written only while the ingest agent processes an event, so their changelog
records land on that event's partition, next to the facility's other state.
"""

from __future__ import annotations

from typing import Any

import faust

INVENTORY_TABLE = "inventory"
SEEN_TABLE = "seen-events"


def register_tables(app: faust.App, partitions: int) -> tuple[Any, Any]:
    inventory = app.Table(
        INVENTORY_TABLE,
        partitions=partitions,
        key_type=str,
        # Not `dict`: Faust decodes stored and recovered values with `value_type.from_data`,
        # which `dict` lacks, so the RocksDB store and every changelog recovery would crash.
        # None keeps the JSON encoding and hands back the plain dict.
        value_type=None,
        help="Applied inventory position per facility and product.",
    )
    seen = app.Table(
        SEEN_TABLE,
        partitions=partitions,
        key_type=str,
        value_type=str,
        help="Event id to the coordinates of its first copy.",
    )
    return inventory, seen
