"""rebuild-table's judgement: the input fold, how far the group has applied, the comparison
and the exit code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from schemas.codec import encode_avro
from schemas.models import CountApproved, VarianceLogged
from streams.core.dead_letter import SourceRecord
from streams.kafka.changelog import PartitionRead, RebuiltTable
from streams.ops.fold import (
    ORDER_SENSITIVE,
    Difference,
    InputFold,
    Kind,
    applied_through,
    compare,
)
from streams.ops.rebuild import Report
from tests.factories import NOON_UTC, count, line, make_settings, variance

COUNTS = "hotwax.inventory.count-approved"
VARIANCES = "hotwax.inventory.variance-logged"
NOON_MS = int(NOON_UTC.timestamp() * 1000)


def record(
    topic: str, offset: int, event: CountApproved | VarianceLogged | bytes, key: bytes = b"STORE_1"
) -> SourceRecord:
    value = event if isinstance(event, bytes) else encode_avro(event)
    return SourceRecord(topic, 0, offset, NOON_MS, key, value)


@pytest.fixture
def fold(tmp_path: Path) -> InputFold:
    return InputFold(make_settings(tmp_path))


def test_the_fold_applies_what_the_worker_applies_and_skips_the_rest(fold: InputFold) -> None:
    ahead = variance(-9, event_id="ahead", at=NOON_UTC + timedelta(hours=1))
    for source in [
        record(VARIANCES, 0, variance(-5, "VAR_DAMAGED", event_id="dmg")),
        record(VARIANCES, 1, variance(-5, "VAR_DAMAGED", event_id="dmg")),  # producer duplicate
        record(VARIANCES, 2, b"\xc3\x01garbage"),
        record(VARIANCES, 3, variance(-1, "VAR_SAMPLE", event_id="other-key"), key=b"STORE_2"),
        # An hour past its record's timestamp: too far in the future when it was processed,
        # although long past today.
        record(VARIANCES, 4, ahead),
        record(VARIANCES, 5, variance(-4, "VAR_SAMPLE", event_id="sample")),
        record(COUNTS, 0, count(line("10017", "3410", counted=7, system=10), event_id="cc")),
    ]:
        fold.add(source)

    assert (fold.records, fold.applied, fold.duplicates, fold.skipped) == (7, 3, 1, 3)
    position = fold.inventory["STORE_1/10017"]
    assert (position["net_variance"], position["exported_variance"]) == (-5 - 4 - 3, -5 - 3)
    assert (position["events_applied"], position["last_counted_quantity"]) == (3, 7)
    assert position["applied_events"] == {
        "dmg": [VARIANCES, 0, NOON_MS],
        "sample": [VARIANCES, 5, NOON_MS],
        "cc": [COUNTS, 0, NOON_MS],
    }
    endings = fold.endings["STORE_1/10017"]
    assert (endings[VARIANCES]["last_event_id"], endings[COUNTS]["last_event_id"]) == (
        "sample",
        "cc",
    )


def table(name: str, values: dict[str, Any], partition_of: dict[str, int]) -> RebuiltTable:
    return RebuiltTable(name, values, partition_of)


def test_applied_through_takes_the_furthest_evidence_per_input_partition() -> None:
    inputs = [TopicPartition(t, p) for t in (COUNTS, VARIANCES) for p in (0, 1)]
    committed = {inputs[0]: 4, inputs[1]: None, inputs[2]: 2, inputs[3]: 8}
    progress = table(
        "progress",
        {
            f"{VARIANCES}:0": {"floor": 5, "dead_letters": {"6": {"dlq_offset": 0}}},
            f"{VARIANCES}:1": {"floor": 4, "dead_letters": {}},
            "junk": {"floor": 99},
        },
        {},
    )
    inventory = table(
        "inventory",
        {
            "STORE_1/1": {"applied_events": {"a": [COUNTS, 9, 0], "b": [VARIANCES, 5, 0]}},
            "STORE_2/1": {"applied_events": {"c": [VARIANCES, 1, 0]}},
            "STORE_3/1": "not a position",
            "STORE_4/1": {"applied_events": [COUNTS, 99]},
        },
        {"STORE_1/1": 0, "STORE_2/1": 1, "STORE_3/1": 1, "STORE_4/1": 1},
    )
    assert applied_through(inputs, committed, inventory, progress) == {
        TopicPartition(COUNTS, 0): 9,  # a position applied offset 9 before any commit
        TopicPartition(COUNTS, 1): -1,  # no evidence at all
        TopicPartition(VARIANCES, 0): 6,  # a dead letter
        TopicPartition(VARIANCES, 1): 7,  # committed 8: everything below it is applied
    }


def position(**fields: Any) -> dict[str, Any]:
    base = {
        "net_variance": -3,
        "events_applied": 2,
        "last_event_id": "v1",
        "last_event_at": "2024-02-29T18:00:00+00:00",
        "netsuite_location_id": "254",
        "netsuite_item_id": "3410",
    }
    return {**base, **fields}


def test_each_kind_of_difference_is_reported_and_counted() -> None:
    rebuilt = {"same": position(), "changed": position(net_variance=-2), "extra": position()}
    folded = {"same": position(), "changed": position(events_applied=3), "missing": position()}
    result = compare("inventory", rebuilt, folded)
    assert (result.compared, result.equal, result.differing, result.missing, result.extra) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert result.differences == [
        Difference("inventory", "changed", Kind.DIFFERS, "events_applied", 2, 3),
        Difference("inventory", "changed", Kind.DIFFERS, "net_variance", -2, -3),
        Difference("inventory", "extra", Kind.EXTRA, None, position(), None),
        Difference("inventory", "missing", Kind.MISSING, None, None, position()),
    ]


def test_a_worker_may_name_copies_the_fold_forgot_but_never_other_ones() -> None:
    # The worker's floors trail the fold's, so it forgets copies later, never earlier.
    folded = {"p": position(applied_events={"e5": ["t", 5, 0]})}
    later = {"p": position(applied_events={"e4": ["t", 4, 0], "e5": ["t", 5, 0]})}
    assert compare("inventory", later, folded).differences == []
    other = {"p": position(applied_events={"e5": ["t", 6, 0]})}
    assert compare("inventory", other, folded).differences == [
        Difference(
            "inventory",
            "p",
            Kind.DIFFERS,
            "applied_events",
            {"e5": ["t", 6, 0]},
            {"e5": ["t", 5, 0]},
        )
    ]


def test_plain_values_differ_as_a_whole() -> None:
    result = compare("other", {"e": "t:0:1"}, {"e": "t:0:2"})
    assert result.differences == [Difference("other", "e", Kind.DIFFERS, None, "t:0:1", "t:0:2")]


def test_the_last_event_may_be_either_topics_last_event() -> None:
    # The worker applied the count last, the fold the variance: both orders are legitimate.
    count_ending = {name: position(last_event_id="c1")[name] for name in ORDER_SENSITIVE}
    variance_ending = {name: position()[name] for name in ORDER_SENSITIVE}
    endings = {"k": {COUNTS: count_ending, VARIANCES: variance_ending}}
    result = compare("inventory", {"k": position(last_event_id="c1")}, {"k": position()}, endings)
    assert result.differences == []
    result = compare(
        "inventory",
        {"k": position(last_event_id="c1", net_variance=0)},
        {"k": position()},
        endings,
    )
    assert [d.field for d in result.differences] == ["net_variance"]
    result = compare("inventory", {"k": position(last_event_id="x9")}, {"k": position()}, endings)
    assert [(d.field, d.changelog, d.fold) for d in result.differences] == [
        ("last_event_id", "x9", "v1")
    ]


def test_differences_or_a_guard_tripped_during_a_rebuild_exit_1(fold: InputFold) -> None:
    read = PartitionRead("inventory-changelog", 0, 0, 5, 5, 5)
    tripped = PartitionRead("inventory-changelog", 1, 0, 5, 1, 5)
    equal = compare("inventory", {"k": position()}, {"k": position()})
    different = compare("inventory", {"k": position()}, {})

    def report(reads: list[PartitionRead], comparison: Any, verify_only: bool = True) -> Report:
        rebuilt = RebuiltTable("inventory", partitions=reads)
        return Report("g", verify_only, "rocksdb", [rebuilt], [], fold, [comparison])

    assert report([read], equal).exit_code == 0
    assert report([read], different).exit_code == 1
    # While workers run a short end is normal; they end it before any recovery.
    assert report([read, tripped], equal).exit_code == 0
    assert report([read, tripped], equal).to_json()["guard_tripped"] is True
    assert report([read, tripped], equal, verify_only=False).exit_code == 1
