"""Batch file names: exact format, validation, ordering and the parse round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.feeds import ADJUSTMENT, FEEDS, TRANSFER, AnyFeed
from sinks.naming import (
    ParsedBatchName,
    batch_file_name,
    first_part_name,
    is_valid_prefix,
    parse_batch_file_name,
)
from sinks.source_partition import SourcePartition

CHICAGO_WINTER = timezone(timedelta(hours=-6))
FIRST_EVENT = datetime(2024, 2, 29, 8, 5, 9, 123456, tzinfo=CHICAGO_WINTER)
COUNTS = SourcePartition("hotwax.inventory.count-approved", 3)
VARIANCES = SourcePartition("hotwax.inventory.variance-logged", 0)
NAME = (
    "acme_InventoryAdjustmentFeed_2024-02-29-14_05_09_123"
    "_count-approved-p3_000000000120-000000000245.csv"
)


def test_name_format() -> None:
    assert batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245) == NAME


def test_parts_are_named_only_when_there_is_more_than_one() -> None:
    name = batch_file_name("acme", TRANSFER, FIRST_EVENT, VARIANCES, 7, 7, part=2, parts=3)
    assert name == (
        "acme_InventoryTransferFeed_2024-02-29-14_05_09_123"
        "_variance-logged-p0_000000000007-000000000007_part2of3.csv"
    )
    assert "_part" not in batch_file_name("acme", TRANSFER, FIRST_EVENT, VARIANCES, 7, 7, 1, 1)


def test_parse_gives_back_every_part() -> None:
    assert parse_batch_file_name(NAME) == ParsedBatchName(
        feed=ADJUSTMENT,
        prefix="acme",
        timestamp=datetime(2024, 2, 29, 14, 5, 9, 123000, tzinfo=UTC),
        topic_tag="count-approved",
        partition=3,
        start=120,
        end=245,
        part=1,
        parts=1,
    )


def test_the_same_batch_always_gets_the_same_name() -> None:
    utc_twin = FIRST_EVENT.astimezone(UTC)
    assert batch_file_name("acme", ADJUSTMENT, utc_twin, COUNTS, 120, 245) == NAME


def test_names_differ_by_partition_offsets_and_part() -> None:
    names = {
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245),
        batch_file_name(
            "acme", ADJUSTMENT, FIRST_EVENT, SourcePartition(COUNTS.topic, 4), 120, 245
        ),
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 121, 245),
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 246),
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245, 1, 2),
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245, 2, 2),
        batch_file_name("acme", TRANSFER, FIRST_EVENT, COUNTS, 120, 245),
    }
    assert len(names) == 7


def test_names_of_a_feed_sort_by_first_event_time() -> None:
    moments = [FIRST_EVENT + timedelta(milliseconds=ms) for ms in (0, 1, 999, 60_000, 86_400_000)]
    # Later batches from a lower partition or lower offsets still sort after earlier ones.
    names = [
        batch_file_name(
            "acme", ADJUSTMENT, moment, SourcePartition(COUNTS.topic, 9 - i), 900 - i, 900
        )
        for i, moment in enumerate(moments)
    ]
    assert sorted(names) == names


@pytest.mark.parametrize(
    ("topic", "tag"),
    [
        ("hotwax.inventory.count-approved", "count-approved"),
        ("hotwax.inventory.variance-logged", "variance-logged"),
        ("variance_logged", "variancelogged"),
        ("a.b.C-9_x! ", "C-9x"),
    ],
)
def test_tag_is_the_last_topic_part_in_safe_characters(topic: str, tag: str) -> None:
    assert SourcePartition(topic, 0).tag == tag


@pytest.mark.parametrize("topic", ["hotwax.", "a.___", "", "x." + "y" * 65])
def test_topics_without_a_usable_tag_are_rejected(topic: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        SourcePartition(topic, 0)


def test_negative_partition_is_rejected() -> None:
    with pytest.raises(ValueError, match="partition"):
        SourcePartition("t", -1)


@pytest.mark.parametrize("prefix", ["a", "acme", "ACME_prod-1", "9x", "a" * 64])
def test_good_prefixes(prefix: str) -> None:
    assert is_valid_prefix(prefix)
    assert batch_file_name(prefix, ADJUSTMENT, FIRST_EVENT, COUNTS, 0, 0).startswith(prefix + "_")


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "-acme",
        "_acme",
        "ac me",
        "acme/x",
        "../acme",
        "a\\b",
        "a.b",
        "a" * 65,
        "acme\n",
        "acmé",
        "\uff41cme",
    ],
)
def test_bad_prefixes_are_rejected(prefix: str) -> None:
    assert not is_valid_prefix(prefix)
    with pytest.raises(ValueError, match="prefix"):
        batch_file_name(prefix, ADJUSTMENT, FIRST_EVENT, COUNTS, 0, 0)


@pytest.mark.parametrize(
    ("start", "end", "part", "parts", "message"),
    [
        (5, 4, 1, 1, "offset"),
        (-1, 4, 1, 1, "offset"),
        (0, 4, 0, 1, "part"),
        (0, 4, 3, 2, "part"),
        (0, 4, 1, 0, "part"),
    ],
)
def test_bad_ranges_and_parts_are_rejected(
    start: int, end: int, part: int, parts: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, start, end, part, parts)


def test_naive_first_event_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        batch_file_name("acme", ADJUSTMENT, datetime(2024, 2, 29), COUNTS, 0, 0)


def test_offsets_past_twelve_digits_still_round_trip() -> None:
    name = batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 10**12 - 1, 10**12)
    assert "_999999999999-1000000000000.csv" in name
    parsed = parse_batch_file_name(name)
    assert parsed is not None
    assert (parsed.start, parsed.end) == (10**12 - 1, 10**12)


@pytest.mark.parametrize(
    "name",
    [
        "foo.csv",
        "",
        NAME.removesuffix(".csv"),
        NAME + ".tmp",
        "dir/" + NAME,
        NAME.replace("InventoryAdjustmentFeed", "InventoryCycleCountVarianceFeed"),
        NAME.replace("2024-02-29", "2023-02-29"),
        NAME.replace("14_05_09", "24_05_09"),
        NAME.replace("-p3_", "-p03_"),
        NAME.replace("000000000120", "00000000120"),
        NAME.replace("000000000120", "0000000000120"),
        NAME.replace("000000000120", "000000000999"),
        NAME.replace(".csv", "_part1of1.csv"),
        NAME.replace(".csv", "_part3of2.csv"),
        NAME.replace(".csv", "_part0of2.csv"),
        NAME.replace(".csv", "_part01of2.csv"),
        NAME.replace("p3", "p٣"),
        NAME.replace("acme", "-acme"),
        NAME.replace("count-approved", "count_approved"),
        NAME.upper(),
    ],
)
def test_names_that_are_not_ours_parse_to_none(name: str) -> None:
    assert parse_batch_file_name(name) is None


ZONES = st.sampled_from([UTC, CHICAGO_WINTER, timezone(timedelta(hours=5, minutes=30))])


@given(
    prefix=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
    feed=st.sampled_from(tuple(FEEDS)),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
    ),
    topic=st.from_regex(r"([a-z_]{1,8}\.){0,3}[A-Za-z0-9-]{1,64}", fullmatch=True),
    partition=st.integers(min_value=0, max_value=10_000),
    start=st.integers(min_value=0, max_value=10**15),
    length=st.integers(min_value=0, max_value=10**6),
    parts=st.integers(min_value=1, max_value=50),
    data=st.data(),
)
def test_names_round_trip_and_stay_safe(
    *,
    prefix: str,
    feed: AnyFeed,
    moment: datetime,
    topic: str,
    partition: int,
    start: int,
    length: int,
    parts: int,
    data: st.DataObject,
) -> None:
    part = data.draw(st.integers(min_value=1, max_value=parts))
    source = SourcePartition(topic, partition)
    name = batch_file_name(prefix, feed, moment, source, start, start + length, part, parts)
    assert parse_batch_file_name(name) == ParsedBatchName(
        feed=feed,
        prefix=prefix,
        timestamp=moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000),
        topic_tag=source.tag,
        partition=partition,
        start=start,
        end=start + length,
        part=part,
        parts=parts,
    )
    assert not any(bad in name for bad in ("/", "\\", ".."))
    assert name.isascii()
    assert not any(ch.isspace() for ch in name)
    assert len(name.encode()) <= 255


def test_the_first_part_names_a_batch_and_its_audit_manifest() -> None:
    parts = [
        batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245, n, 3) for n in (1, 2, 3)
    ]
    assert {first_part_name(name) for name in parts} == {parts[0]}
    whole = batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245)
    assert first_part_name(whole) == whole
    assert first_part_name("not-ours.csv") == "not-ours.csv"
