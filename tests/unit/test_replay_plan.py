"""The pure replay planner: targets, clamping, re-read counts, the rollback file format."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.errors import UsageError
from streams.ops.replay_plan import (
    PartitionState,
    Plan,
    ShiftBy,
    ToDatetime,
    ToEarliest,
    ToExported,
    ToLatest,
    ToOffset,
    export_document,
    parse_datetime,
    parse_export,
    plan_partition,
    requested_offset,
    selected_partitions,
)

# A partition holding offsets 10..49 (10 were deleted by retention), committed at 30.
STATE = PartitionState("t", 0, committed=30, log_start=10, high_watermark=50)
FRESH = PartitionState("t", 1, committed=None, log_start=10, high_watermark=50)


@pytest.mark.parametrize(
    ("target", "state", "new", "reread", "clamped"),
    [
        (ToOffset(20), STATE, 20, 10, False),
        (ToOffset(40), STATE, 40, -10, False),
        (ToOffset(3), STATE, 10, 20, True),
        (ToOffset(99), STATE, 50, -20, True),
        (ToEarliest(), STATE, 10, 20, False),
        (ToLatest(), STATE, 50, -20, False),
        (ShiftBy(-5), STATE, 25, 5, False),
        (ShiftBy(7), STATE, 37, -7, False),
        (ShiftBy(-100), STATE, 10, 20, True),
        (ShiftBy(100), STATE, 50, -20, True),
        # No committed offset: the worker would start at the log start, so that is "current".
        (ToEarliest(), FRESH, 10, 0, False),
        (ToOffset(25), FRESH, 25, -15, False),
        (ShiftBy(5), FRESH, 15, -5, False),
        (ShiftBy(-5), FRESH, 10, 0, True),
    ],
)
def test_each_target_gives_a_clamped_offset_and_a_reread_count(
    target: ToOffset | ToEarliest | ToLatest | ShiftBy,
    state: PartitionState,
    new: int,
    reread: int,
    clamped: bool,
) -> None:
    plan = plan_partition(state, requested_offset(target, state))
    assert (plan.new, plan.reread, plan.clamped) == (new, reread, clamped)


def test_a_committed_offset_outside_the_log_counts_from_the_nearest_end() -> None:
    # Retention deleted up to 10: a worker committed at 4 resumes at the log start.
    behind = PartitionState("t", 0, committed=4, log_start=10, high_watermark=50)
    assert behind.position == 10
    assert plan_partition(behind, 10).reread == 0


def test_exported_offsets_come_back_and_none_means_the_log_start() -> None:
    target = ToExported("back.json", {("t", 0): 12, ("t", 1): None})
    assert plan_partition(STATE, requested_offset(target, STATE)).new == 12
    assert plan_partition(FRESH, requested_offset(target, FRESH)).new == 10


def test_a_plan_totals_rereads_and_skips_separately() -> None:
    plan = Plan(
        "g",
        ShiftBy(-5),
        (plan_partition(STATE, 25), plan_partition(FRESH, 18), plan_partition(STATE, 30)),
    )
    assert (plan.reread, plan.skipped, plan.moving) == (5, 8, 2)
    assert plan.summary(executed=False) == (
        "dry run: 2 of 3 partition(s) of group g would move by -5; 5 event(s) to re-read, "
        "8 unread event(s) skipped and never processed (add --execute to apply)"
    )
    assert plan.summary(executed=True).startswith(
        "applied and verified: 2 of 3 partition(s) of group g moved by -5;"
    )
    document = plan.to_json(executed=False, members=1)
    assert document["partitions"][1] == {
        "topic": "t",
        "partition": 1,
        "committed": None,
        "log_start": 10,
        "high_watermark": 50,
        "requested": 18,
        "new": 18,
        "reread": -8,
        "clamped": False,
    }
    assert (document["reread"], document["skipped"], document["active_members"]) == (5, 8, 1)


def test_a_plan_without_skips_does_not_mention_them() -> None:
    plan = Plan("g", ToEarliest(), (plan_partition(STATE, 10),))
    assert "skipped" not in plan.summary(executed=True)
    assert "20 event(s) to re-read" in plan.summary(executed=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-02-29T12:00:00-06:00", datetime(2024, 2, 29, 18, 0, tzinfo=UTC)),
        ("2024-02-29T18:00:00Z", datetime(2024, 2, 29, 18, 0, tzinfo=UTC)),
        ("2024-02-29T18:00:00.250+00:00", datetime(2024, 2, 29, 18, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_datetimes_need_an_offset_and_keep_it(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


def test_a_datetime_becomes_epoch_milliseconds_exactly() -> None:
    at = datetime(2023, 11, 14, 16, 13, 26, 500_000, tzinfo=timezone(timedelta(hours=-6)))
    assert ToDatetime(at).timestamp_ms == 1_700_000_006_500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-02-29T12:00:00", "'2024-02-29T12:00:00' has no UTC offset"),
        ("2024-02-29", "'2024-02-29' has no UTC offset"),
        ("yesterday", "'yesterday' is not an ISO-8601 date-time"),
        ("2024-02-30T12:00:00Z", "'2024-02-30T12:00:00Z' is not an ISO-8601 date-time"),
    ],
)
def test_naive_or_unparseable_datetimes_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse_datetime(text)


def test_an_export_round_trips_through_parse_export() -> None:
    now = datetime(2024, 2, 29, 12, 0, tzinfo=timezone(timedelta(hours=-6)))
    document = export_document("g", [STATE, FRESH], now)
    assert document == {
        "group": "g",
        "exported_at": "2024-02-29T18:00:00+00:00",
        "offsets": [
            {"topic": "t", "partition": 0, "offset": 30},
            {"topic": "t", "partition": 1, "offset": None},
        ],
    }
    assert parse_export(json.dumps(document), "f.json") == ("g", {("t", 0): 30, ("t", 1): None})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "f.json: not JSON"),
        ("[]", "f.json: not a replay export"),
        ('{"group": "g", "offsets": []}', "f.json: not a replay export"),
        ('{"offsets": [{"topic": "t", "partition": 0, "offset": 1}]}', "not a replay export"),
        ('{"group": "g", "offsets": [{"topic": "t", "partition": -1, "offset": 1}]}', "offsets[0]"),
        (
            '{"group": "g", "offsets": [{"topic": "t", "partition": 0, "offset": "1"}]}',
            "offsets[0]",
        ),
        ('{"group": "g", "offsets": [{"topic": "t", "partition": true, "offset": 1}]}', "offsets"),
        ('{"group": "g", "offsets": [{"partition": 0, "offset": 1}]}', "offsets[0] needs a topic"),
    ],
)
def test_a_bad_rollback_file_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_export(text, "f.json")


def test_a_rollback_file_chooses_its_partitions_and_filters_narrow_them() -> None:
    target = ToExported("f.json", {("a", 0): 1, ("a", 2): 3, ("b", 1): None})
    assert selected_partitions(target, "a", None) == {0, 2}
    assert selected_partitions(target, "a", frozenset({2, 5})) == {2}
    assert selected_partitions(ToEarliest(), "a", None) is None
    assert selected_partitions(ToEarliest(), "a", frozenset({3})) == {3}
    with pytest.raises(UsageError, match=re.escape("f.json has no offsets for topic c")):
        selected_partitions(target, "c", None)
    with pytest.raises(
        UsageError, match=re.escape("f.json has no offsets for those partitions of b")
    ):
        selected_partitions(target, "b", frozenset({0}))
