"""Keeps `streams.core.analytics_totals` equal to what the inventory table's store holds,
and folds what the totals do not keep off the event loop.

The store changes in one place: its changelog batch apply, which both our acknowledged
writes and Faust's recovery (at start and at every rebalance) go through
(`WrittenThroughTable.apply_changelog_batch`). Each record there moves the totals from the
position stored before it to the one it stores. Writes that a failed flush forgets never
reached the store, so they never reached the totals either. A partition is folded from
its store once it is active here and dropped when it is not: a worker restarts on a
RocksDB folder that recovery only tops up, and a revoked partition's positions leave.

Faust's stores have no public read of one partition, so the reads below use the memory
store's key index and the RocksDB store's per-partition databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import orjson

from streams.core.analytics import Fact, facts
from streams.core.analytics_totals import AnalyticsTotals, PartitionTotals, answerable, fold


def _is_rocksdb(store: Any) -> bool:
    return hasattr(store, "_db_for_partition")


def _stored(store: Any, partition: int, event: Any, to_key: Callable[[Any], Any]) -> Any:
    """The position stored for `event`'s key on `partition`, before `event` applies."""
    if _is_rocksdb(store):
        raw = store._db_for_partition(partition).get(event.message.key)
        return None if raw is None else orjson.loads(raw)
    return store.data.get(to_key(event.key))


def _memory_positions(store: Any, partition: int) -> Iterator[dict[str, Any]]:
    owners = store._key_partition
    for key, value in list(store.data.items()):
        if owners.get(key) == partition and value is not None:
            yield value


def observe(
    totals: AnalyticsTotals,
    store: Any,
    batch: Iterable[Any],
    decode: tuple[Callable[[Any], Any], Callable[[Any], Any]],
) -> None:
    """Move `totals` by what `batch` (changelog events) is about to change in `store`."""
    to_key, to_value = decode  # the table's, as the store's own batch apply uses
    followed = totals.follows()
    latest: dict[tuple[int, Any], Any] = {}  # a key written twice in one batch
    for event in batch:
        partition = event.message.partition
        if partition not in followed:
            continue
        key = (partition, event.message.key)
        old = latest[key] if key in latest else _stored(store, partition, event, to_key)
        new = None if event.message.value is None else to_value(event.value)
        totals.replace(partition, old, new)
        latest[key] = new


async def track_actives(totals: AnalyticsTotals, store: Any, actives: Collection[int]) -> None:
    """Fold each newly active partition from the store; forget the ones no longer active.

    A RocksDB partition is folded in a worker thread from an iterator made here, which
    reads the version of the store at this moment: the changes after it wait in the
    totals and go on top of the fold (`AnalyticsTotals.start`). The memory store (tests,
    development) is folded here, in one piece."""
    for partition in totals.follows() - set(actives):
        totals.drop(partition)
    for partition in sorted(set(actives) - totals.follows()):
        if not _is_rocksdb(store):
            totals.track(partition, _memory_positions(store, partition))
            continue
        token = totals.start(partition)
        items = store._db_for_partition(partition).items()  # the version folded
        folded = await asyncio.to_thread(_fold_items, items, store.offset_key)
        totals.finish(partition, token, folded)


def _fold_items(items: Iterable[tuple[bytes, bytes]], offset_key: bytes) -> PartitionTotals:
    # Faust keeps the partition's persisted changelog offset among its positions.
    return fold(orjson.loads(raw) for key, raw in items if key != offset_key)


async def facts_off_loop(store: Any, partitions: Collection[int]) -> list[Fact]:
    """The facts of the positions on `partitions`, read in a worker thread: per product,
    what a report needs is as large as the table."""
    if _is_rocksdb(store):
        dbs = [store._dbs[p] for p in partitions if p in store._dbs]

        def read() -> list[Fact]:
            # A RocksDB iterator reads one consistent version of its database, so writes
            # the loop makes meanwhile are in it entirely or not at all.
            return [
                fact
                for db in dbs
                for fact in facts(orjson.loads(raw) for _, raw in store._visible_items(db))
            ]

        return await asyncio.to_thread(read)
    # The memory store (tests, development) is a dict the loop keeps writing: copy it here.
    wanted, owners = set(partitions), store._key_partition
    held = [v for k, v in list(store.data.items()) if owners.get(k) in wanted and v is not None]
    return await asyncio.to_thread(lambda: list(facts(held)))


async def report_facts(table: Any, by: Sequence[str], filtered: bool) -> list[Fact]:
    """What a report grouped `by` (and `filtered` by day or not) folds, over the
    partitions `table` (a `WrittenThroughTable`) serves: from its running totals when they
    hold the keys, else read off the loop."""
    partitions = table.active_partitions()
    totals: AnalyticsTotals | None = table.totals
    if totals is not None and answerable(by):
        return list(totals.facts(partitions, by, filtered))
    return await facts_off_loop(table.data, partitions)
