"""Whole-store reads run a slice at a time on the loop, giving everything else turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from streams.worker.table_totals import in_slices


async def test_the_loop_gets_a_turn_after_every_slice() -> None:
    turns: list[str] = []
    read: list[int] = []

    def items() -> Iterator[int]:
        for n in range(7):
            read.append(n)
            yield n

    async def other() -> None:
        while True:
            turns.append(f"after {len(read)}")
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)  # the other task has had its first turn
    turns.clear()
    chunks = [chunk async for chunk in in_slices(items(), size=3)]
    task.cancel()
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    # A turn after each slice: never more than one slice read between two turns.
    assert turns[:3] == ["after 3", "after 6", "after 7"]


async def test_the_first_slice_is_read_before_any_turn() -> None:
    # An iterator over a store must read it as it was when the fold began, before the
    # loop lets anything write to it.
    store = [0, 1, 2, 3]

    async def writer() -> None:
        store[:] = [9, 9, 9, 9]

    task = asyncio.create_task(writer())
    slices = in_slices((store[i] for i in range(4)), size=2)
    first = await anext(slices)
    await slices.aclose()
    await task
    assert first == [0, 1]
