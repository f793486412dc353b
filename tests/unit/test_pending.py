from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sinks.feeds import Feed
from sinks.source_partition import SourcePartition
from streams.core.pending import SourceRegistry, SourceState
from tests.unit.test_batching import row

SOURCE = SourcePartition("variances", 0)


@dataclass
class Event:
    offset: int
    acked: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acked.append(self.offset)
        return True


def test_events_without_rows_are_acked_at_once_when_nothing_waits() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT, Feed.TRANSFER))
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    state.record(1, Event(1, acked), {}, now=0)
    assert acked == [0, 1]
    assert state.low_water() == 2


def test_nothing_at_or_after_the_first_unpublished_row_is_acked() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT, Feed.TRANSFER))
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    state.record(1, Event(1, acked), {Feed.TRANSFER: [row(1)]}, now=0)
    state.record(2, Event(2, acked), {}, now=0)
    state.record(3, Event(3, acked), {Feed.ADJUSTMENT: [row(3)]}, now=0)
    assert acked == [0]
    state.batchers[Feed.TRANSFER].drop_through(3)  # the transfer batch is published
    assert state.release() == 2
    assert acked == [0, 1, 2]
    state.batchers[Feed.ADJUSTMENT].drop_through(3)
    state.release()
    assert acked == [0, 1, 2, 3]


def test_a_rewind_forgets_what_comes_after_it_but_keeps_earlier_rows() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT,))
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    for offset in (1, 2, 3):
        state.record(offset, Event(offset, acked), {Feed.ADJUSTMENT: [row(offset)]}, now=0)
    state.rewind(2)
    assert state.consumed_through == 1
    assert [r.offset for r in state.batchers[Feed.ADJUSTMENT].rows_through(9)] == [1]
    state.record(2, Event(2, acked), {Feed.ADJUSTMENT: [row(2)]}, now=0)
    state.batchers[Feed.ADJUSTMENT].drop_through(2)
    state.release()
    assert acked == [0, 1, 2]


async def test_the_registry_only_knows_owned_partitions() -> None:
    registry = SourceRegistry({"variances": (Feed.ADJUSTMENT,)})
    assert registry.get(SOURCE) is None
    registry.assign([SOURCE, SourcePartition("unrelated-changelog", 0)])
    assert registry.get(SOURCE) is not None
    assert len(registry) == 1
    await registry.revoke([SOURCE])
    assert registry.get(SOURCE) is None


async def test_revoking_waits_for_a_flush_in_progress() -> None:
    registry = SourceRegistry({"variances": (Feed.ADJUSTMENT,)})
    registry.assign([SOURCE])
    state = registry.get(SOURCE)
    assert state is not None
    await state.lock.acquire()
    revoking = asyncio.create_task(registry.revoke([SOURCE]))
    await asyncio.sleep(0.01)
    assert not revoking.done()
    state.lock.release()
    await revoking
    assert registry.get(SOURCE) is None


async def test_backpressure_waits_until_rows_are_published() -> None:
    registry = SourceRegistry({"variances": (Feed.ADJUSTMENT,)})
    registry.assign([SOURCE])
    state = registry.get(SOURCE)
    assert state is not None
    state.record(0, Event(0), {Feed.ADJUSTMENT: [row(0), row(0)]}, now=0)
    waiting = asyncio.create_task(registry.wait_below(1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    state.batchers[Feed.ADJUSTMENT].drop_through(0)
    registry.notify_progress()
    await asyncio.wait_for(waiting, 1)


def test_with_the_durable_gate_events_wait_for_their_table_writes() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT,), durable_gate=True)
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    state.record(1, Event(1, acked), {}, now=0)
    assert acked == []
    mark = state.consumed_mark()
    state.record(2, Event(2, acked), {}, now=0)
    state.mark_durable(mark)
    assert acked == [0, 1]
    assert state.low_water() == 2


def test_the_durable_gate_and_unpublished_rows_both_hold_an_event() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT,), durable_gate=True)
    acked: list[int] = []
    state.record(0, Event(0, acked), {Feed.ADJUSTMENT: [row(0)]}, now=0)
    state.mark_durable(state.consumed_mark())
    assert acked == []
    state.batchers[Feed.ADJUSTMENT].drop_through(0)
    state.release()
    assert acked == [0]


def test_a_mark_taken_before_a_rewind_acks_nothing_consumed_again() -> None:
    state = SourceState(SOURCE, (Feed.ADJUSTMENT,), durable_gate=True)
    acked: list[int] = []
    for offset in (0, 1, 2):
        state.record(offset, Event(offset, acked), {}, now=0)
    stale = state.consumed_mark()
    state.rewind(1)
    state.record(1, Event(1, acked), {}, now=0)
    state.mark_durable(stale)
    assert acked == []
    state.mark_durable(state.consumed_mark())
    assert acked == [0, 1]


async def test_a_mark_from_before_a_revoke_does_not_reach_the_next_assignment() -> None:
    registry = SourceRegistry({"variances": (Feed.ADJUSTMENT,)}, durable_gate=True)
    registry.assign([SOURCE])
    first = registry.get(SOURCE)
    assert first is not None
    first.record(0, Event(0), {}, now=0)
    stale = registry.consumed()
    await registry.revoke([SOURCE])
    registry.assign([SOURCE])
    acked: list[int] = []
    second = registry.get(SOURCE)
    assert second is not None
    second.record(0, Event(0, acked), {}, now=0)
    registry.mark_durable(SOURCE, stale[SOURCE])
    assert acked == []
    registry.mark_durable(SOURCE, registry.consumed()[SOURCE])
    assert acked == [0]
