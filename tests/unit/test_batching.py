from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sinks.feeds import AdjustmentRow
from sinks.retry import Backoff
from sinks.rows import PendingRow
from streams.core.batching import FeedBatcher, WindowPolicy

POLICY = WindowPolicy(window_seconds=60, max_rows=3)


def row(offset: int) -> PendingRow:
    adjustment = AdjustmentRow(f"R{offset}", "927", "3410", -1, "254", date(2024, 1, 1), "m", "1")
    return PendingRow(offset, adjustment, datetime(2024, 1, 1, tzinfo=UTC), "json")


def test_an_empty_batcher_is_never_due() -> None:
    assert not FeedBatcher().is_due(now=1e9, policy=POLICY)


def test_the_window_runs_from_the_oldest_waiting_row() -> None:
    batcher = FeedBatcher()
    batcher.add([row(1)], now=100)
    batcher.add([row(2)], now=150)
    assert not batcher.is_due(159.9, POLICY)
    assert batcher.is_due(160, POLICY)
    batcher.drop_through(1)
    assert batcher.opened_at == 150
    assert not batcher.is_due(160, POLICY)


def test_reaching_the_row_limit_closes_the_window_early() -> None:
    batcher = FeedBatcher()
    batcher.add([row(1), row(1), row(2)], now=0)
    assert batcher.is_due(0, POLICY)


def test_rows_through_and_drop_through_follow_offsets() -> None:
    batcher = FeedBatcher()
    batcher.add([row(1), row(4), row(9)], now=0)
    assert [r.offset for r in batcher.rows_through(4)] == [1, 4]
    assert batcher.drop_through(4) == 2
    assert batcher.first_offset == 9
    assert batcher.drop_through(100) == 1
    assert batcher.first_offset is None
    assert batcher.age(now=50) == 0


def test_drop_from_forgets_the_newest_rows_and_their_arrival_times() -> None:
    batcher = FeedBatcher()
    batcher.add([row(1)], now=0)
    batcher.add([row(4), row(9)], now=5)
    batcher.drop_from(4)
    assert [r.offset for r in batcher.rows_through(100)] == [1]
    batcher.add([row(4)], now=7)  # taken again after a rewind
    assert batcher.opened_at == 0
    batcher.drop_from(0)
    assert batcher.opened_at is None


def test_offsets_must_not_go_backwards() -> None:
    batcher = FeedBatcher()
    batcher.add([row(5)], now=0)
    with pytest.raises(ValueError, match="offset 4 arrived after 5"):
        batcher.add([row(4)], now=0)


def test_backoff_doubles_up_to_its_cap_and_resets_on_success() -> None:
    backoff = Backoff(initial=1, maximum=8, jitter=0)
    assert [backoff.failed(now=0) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert not backoff.ready(now=7.9)
    assert backoff.ready(now=8)
    backoff.succeeded()
    assert backoff.ready(now=0)
    assert backoff.failed(now=0) == 1


def test_jitter_never_exceeds_the_cap() -> None:
    backoff = Backoff(initial=1, maximum=5, jitter=0.2)
    assert all(backoff.failed(now=0) <= 5 for _ in range(50))
