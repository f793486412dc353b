from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sinks.feeds import ADJUSTMENT, TRANSFER, AnyFeed
from sinks.source_partition import SourcePartition
from streams.core.pending import Delivery, GapRefused, SourceRegistry, SourceState
from tests.unit.test_batching import row

SOURCE = SourcePartition("variances", 0)


def started(*feeds: AnyFeed, durable_gate: bool = False) -> SourceState:
    """A state whose assignment starts at offset 0."""
    state = SourceState(SOURCE, feeds or (ADJUSTMENT,), durable_gate=durable_gate)
    state.start_at(0)
    return state


@dataclass
class Event:
    offset: int
    acked: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acked.append(self.offset)
        return True


def test_events_without_rows_are_acked_together_at_the_next_release() -> None:
    state = started(ADJUSTMENT, TRANSFER)
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    state.record(1, Event(1, acked), {}, now=0)
    assert acked == []  # a batch's events are acked at its end
    assert state.release() == 2
    assert acked == [0, 1]
    assert state.low_water() == 2


def test_nothing_at_or_after_the_first_unpublished_row_is_acked() -> None:
    state = started(ADJUSTMENT, TRANSFER)
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    state.record(1, Event(1, acked), {TRANSFER: [row(1)]}, now=0)
    state.record(2, Event(2, acked), {}, now=0)
    state.record(3, Event(3, acked), {ADJUSTMENT: [row(3)]}, now=0)
    state.release()
    assert acked == [0]
    state.batchers[TRANSFER].drop_through(3)  # the transfer batch is published
    assert state.release() == 2
    assert acked == [0, 1, 2]
    state.batchers[ADJUSTMENT].drop_through(3)
    state.release()
    assert acked == [0, 1, 2, 3]


def test_a_rewind_forgets_what_comes_after_it_but_keeps_earlier_rows() -> None:
    state = started()
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    for offset in (1, 2, 3):
        state.record(offset, Event(offset, acked), {ADJUSTMENT: [row(offset)]}, now=0)
    state.rewind(2)
    assert state.consumed_through == 1
    assert [r.offset for r in state.batchers[ADJUSTMENT].rows_through(9)] == [1]
    state.record(2, Event(2, acked), {ADJUSTMENT: [row(2)]}, now=0)
    state.batchers[ADJUSTMENT].drop_through(2)
    state.release()
    assert acked == [0, 1, 2]


def test_the_registry_only_knows_owned_partitions() -> None:
    registry = SourceRegistry({"variances": (ADJUSTMENT,)})
    assert registry.get(SOURCE) is None
    registry.assign([SOURCE, SourcePartition("unrelated-changelog", 0)])
    assert registry.get(SOURCE) is not None
    assert len(registry) == 1
    registry.revoke([SOURCE])
    assert registry.get(SOURCE) is None


def test_deliveries_are_told_apart_by_where_the_partition_stands() -> None:
    state = SourceState(SOURCE, (ADJUSTMENT,))
    assert state.delivery(7) is Delivery.FIRST
    state.start_at(5)
    assert [state.delivery(o) for o in (4, 5, 6)] == [
        Delivery.AGAIN,
        Delivery.NEXT,
        Delivery.AHEAD,
    ]


def test_nothing_is_recorded_past_a_gap_until_it_is_shown_empty() -> None:
    state = started()
    acked: list[int] = []
    state.record(0, Event(0, acked), {}, now=0)
    with pytest.raises(GapRefused):
        state.record(2, Event(2, acked), {}, now=0)
    state.skip_to(2)  # the broker holds nothing at offset 1 (a transaction marker)
    state.record(2, Event(2, acked), {}, now=0)
    state.release()
    assert acked == [0, 2]


def test_a_rollback_forgets_what_is_not_durable_and_says_where_to_resume() -> None:
    state = started(durable_gate=True)
    for offset in (0, 1):
        state.record(offset, Event(offset), {ADJUSTMENT: [row(offset)]}, now=0)
    state.mark_durable(state.consumed_mark())
    state.record(2, Event(2), {ADJUSTMENT: [row(2)]}, now=0)
    assert state.rewind_to_durable() == 2
    assert [r.offset for r in state.batchers[ADJUSTMENT].rows_through(9)] == [0, 1]
    assert state.delivery(2) is Delivery.NEXT


def test_only_a_floor_carried_by_a_durable_flush_becomes_the_durable_floor() -> None:
    state = started(durable_gate=True)
    state.record(0, Event(0), {}, now=0)
    state.mark_durable(state.consumed_mark())
    assert state.durable_floor == 0
    state.mark_durable(state.consumed_mark(), floor=1)
    assert state.durable_floor == 1


def test_with_the_durable_gate_events_wait_for_their_table_writes() -> None:
    state = started(durable_gate=True)
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
    state = started(durable_gate=True)
    acked: list[int] = []
    state.record(0, Event(0, acked), {ADJUSTMENT: [row(0)]}, now=0)
    state.mark_durable(state.consumed_mark())
    assert acked == []
    state.batchers[ADJUSTMENT].drop_through(0)
    state.release()
    assert acked == [0]


def test_a_mark_taken_before_a_rewind_acks_nothing_consumed_again() -> None:
    state = started(durable_gate=True)
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


def test_a_mark_from_before_a_revoke_does_not_reach_the_next_assignment() -> None:
    registry = SourceRegistry({"variances": (ADJUSTMENT,)}, durable_gate=True)
    registry.assign([SOURCE])
    first = registry.get(SOURCE)
    assert first is not None
    first.start_at(0)
    first.record(0, Event(0), {}, now=0)
    stale = registry.consumed(0)
    registry.revoke([SOURCE])
    registry.assign([SOURCE])
    acked: list[int] = []
    second = registry.get(SOURCE)
    assert second is not None
    second.start_at(0)
    second.record(0, Event(0, acked), {}, now=0)
    registry.mark_durable(stale, {})
    assert acked == []
    registry.mark_durable(registry.consumed(0), {})
    assert acked == [0]
