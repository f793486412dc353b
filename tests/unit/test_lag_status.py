from __future__ import annotations

import pytest

from streams.core.lag_status import LagHistory, LagPolicy, Sample, Status, evaluate, worst

POLICY = LagPolicy(warn_after=40, stall_after=70, stop_after=600)  # a 20 s window
NOW = 1_000_000.0


def sample(at: float, committed: int | None, hw: int, oldest_age: float | None = None) -> Sample:
    oldest = None if oldest_age is None else round((at - oldest_age) * 1000)
    return Sample(
        at=at, committed=committed, high_watermark=hw, log_start=0, oldest_timestamp_ms=oldest
    )


def test_no_lag_is_ok_even_if_nothing_moves() -> None:
    assert evaluate([sample(NOW, 10, 10), sample(NOW + 10, 10, 10)], POLICY) is Status.OK


def test_a_batch_window_of_lag_is_normal_for_a_batching_sink() -> None:
    history = [sample(NOW, 10, 50, oldest_age=5), sample(NOW + 10, 10, 90, oldest_age=15)]
    assert evaluate(history, POLICY) is Status.OK


def test_growing_lag_older_than_a_window_warns() -> None:
    history = [sample(NOW, 10, 50, 30), sample(NOW + 10, 20, 90, 45), sample(NOW + 20, 30, 120, 50)]
    assert evaluate(history, POLICY) is Status.WARN


def test_lag_that_shrinks_does_not_warn() -> None:
    history = [sample(NOW, 10, 90, 45), sample(NOW + 10, 50, 95, 50)]
    assert evaluate(history, POLICY) is Status.OK


def test_committed_offset_not_moving_past_two_windows_is_a_stall() -> None:
    history = [sample(NOW, 10, 50, 70), sample(NOW + 10, 10, 50, 80)]
    assert evaluate(history, POLICY) is Status.STALL


def test_a_moving_consumer_is_not_stalled() -> None:
    history = [sample(NOW, 10, 50, 75), sample(NOW + 10, 11, 50, 80)]
    assert evaluate(history, POLICY) is Status.OK


def test_an_old_unconsumed_event_means_stop() -> None:
    assert evaluate([sample(NOW, 3, 9, 601)], POLICY) is Status.STOP


def test_a_group_that_never_committed_lags_from_the_log_start() -> None:
    never = Sample(at=NOW, committed=None, high_watermark=7, log_start=2, oldest_timestamp_ms=None)
    assert never.lag == 5
    assert evaluate([never], POLICY) is Status.OK  # no age known, no evidence of a problem


def test_policy_scales_with_the_window() -> None:
    policy = LagPolicy.for_window(60)
    assert (policy.warn_after, policy.stall_after, policy.stop_after) == (90, 150, 600)
    assert LagPolicy.for_window(120).stop_after == 1200


@pytest.mark.parametrize(
    ("status", "code"), [(Status.OK, 0), (Status.WARN, 1), (Status.STALL, 2), (Status.STOP, 2)]
)
def test_exit_codes(status: Status, code: int) -> None:
    assert status.exit_code == code


def test_history_keeps_a_sliding_window_and_the_worst_wins() -> None:
    history = LagHistory(size=2)
    key = ("topic", 0)
    history.add({key: sample(NOW, 10, 50, 75)})
    history.add({key: sample(NOW + 10, 11, 50, 80)})
    history.add({key: sample(NOW + 20, 11, 50, 90)})  # the first sample has slid out
    assert history.statuses(POLICY) == {key: Status.STALL}
    assert history.latest()[key].committed == 11
    assert worst([Status.OK, Status.STALL, Status.WARN]) is Status.STALL
    assert worst([]) is Status.OK


def test_a_committed_offset_moving_back_is_rewind() -> None:
    history = [sample(NOW, 50, 60, 5), sample(NOW + 10, 0, 60, 5)]
    assert evaluate(history, POLICY) is Status.REWIND
    assert Status.REWIND.exit_code == 1
    # Once it is out of the sampling window, the partition is judged as usual again.
    assert evaluate(history[1:], POLICY) is Status.OK
    # A partition down for longer than the stop threshold says so first.
    stopped = [sample(NOW, 50, 60, 700), sample(NOW + 10, 0, 60, 700)]
    assert evaluate(stopped, POLICY) is Status.STOP


def test_statuses_rank_by_severity() -> None:
    assert worst([Status.OK, Status.REWIND, Status.WARN]) is Status.REWIND
    assert worst([Status.REWIND, Status.STALL]) is Status.STALL
    assert [s.exit_code for s in Status] == [0, 1, 1, 2, 2]
