"""Keeps `streams.core.analytics_totals` equal to what the inventory table's store holds,
and folds what the totals do not keep a slice at a time.

The store changes in one place: its changelog batch apply, which both our acknowledged
writes and Faust's recovery (at start and at every rebalance) go through
(`WrittenThroughTable.apply_changelog_batch`). Each record there moves the totals from the
position stored before it to the one it stores. Writes that a failed flush forgets never
reached the store, so they never reached the totals either. A partition is folded from
its store once it is active here and dropped when it is not: a worker restarts on a
RocksDB folder that recovery only tops up, and a revoked partition's positions leave.

Whole-partition reads run on the event loop a slice of `SLICE` positions at a time, not in
a thread: the fold is pure Python, so a thread would hold the GIL against the loop for as
long as the interpreter lets it, while a slice holds the loop a few milliseconds
(docs/decisions.md has the measurements).

Faust's stores have no public read of one partition, so the reads below use the memory
store's key index and the RocksDB store's per-partition databases.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson

from streams.core.analytics import Fact, facts
from streams.core.analytics_totals import AnalyticsTotals, answerable, fold

SLICE = 500  # positions: a few milliseconds of the loop, then everything else's turn
_ONE_FOLD = asyncio.Lock()
T = TypeVar("T")


async def in_slices(items: Iterable[T], size: int = SLICE) -> AsyncGenerator[list[T], None]:
    """`items` a slice at a time, giving the loop a turn after each. The first slice is
    read before any turn, so an iterator over a store reads it as it was at the call."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
        await asyncio.sleep(0)


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

    A RocksDB partition is folded a slice at a time from one iterator, which reads the
    version of the store at `start`: the changes after it wait in the totals and go on top
    of the fold (`AnalyticsTotals.finish`). The memory store (tests, development) is
    folded in one piece."""
    for partition in totals.follows() - set(actives):
        totals.drop(partition)
    for partition in sorted(set(actives) - totals.follows()):
        if not _is_rocksdb(store):
            totals.track(partition, _memory_positions(store, partition))
            continue
        token = totals.start(partition)
        folded = fold(())
        items = store._db_for_partition(partition).items()
        async for chunk in in_slices(items):
            # Faust keeps the partition's persisted changelog offset among its positions.
            fold((orjson.loads(raw) for key, raw in chunk if key != store.offset_key), folded)
        totals.finish(partition, token, folded)


async def facts_in_slices(store: Any, partitions: Collection[int]) -> list[Fact]:
    """The facts of the positions on `partitions`, a slice at a time: per product, what a
    report needs is as large as the table."""
    found: list[Fact] = []
    async for chunk in in_slices(_positions(store, partitions)):
        found.extend(facts(chunk))
    return found


def _positions(store: Any, partitions: Collection[int]) -> Iterator[dict[str, Any]]:
    if _is_rocksdb(store):
        # Each partition's RocksDB iterator reads one version of its database.
        dbs = [store._dbs[p] for p in sorted(partitions) if p in store._dbs]
        return (orjson.loads(raw) for db in dbs for _, raw in store._visible_items(db))
    return itertools.chain.from_iterable(_memory_positions(store, p) for p in partitions)


async def report_facts(table: Any, by: Sequence[str], filtered: bool) -> list[Fact]:
    """What a report grouped `by` (and `filtered` by day or not) folds, over the
    partitions `table` (a `WrittenThroughTable`) serves: from its running totals when they
    hold the keys, else read a slice at a time, one such read at a time: each is as large
    as the table, and several at once would share the loop among themselves."""
    partitions = table.active_partitions()
    totals: AnalyticsTotals | None = table.totals
    if totals is not None and answerable(by):
        return list(totals.facts(partitions, by, filtered))
    async with _ONE_FOLD:
        return await facts_in_slices(table.data, partitions)
