"""Deterministic batch file names.

A name is built only from what defines a batch (feed, first event time, source partition,
offset range, part), never from the wall clock, so a batch rebuilt after a crash or a
replay gets the name it had before and the publisher can see it was already published:

    acme_InventoryAdjustmentFeed_2024-02-29-14_05_09_123_count-approved-p3_000000000120-000000000245.csv

The timestamp leads after the feed label, so names of one feed sort by time, as NetSuite
lists `csv/` and as the OMS's own `<prefix>_<Feed>_<yyyy-MM-dd-HH_mm_ss_SSS>.csv` do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sinks.feeds import FEEDS, AnyFeed
from sinks.source_partition import SourcePartition

# Leads every name, so it is also what keeps a name off `/`, `..` and whitespace.
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Explicit [0-9]: `\d` would also accept non-ASCII digits, which int() happily parses.
_NAME = re.compile(
    r"(?P<prefix>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"
    # Any word: which feed it names is the registry's answer at parse time.
    r"_(?P<label>[A-Za-z][A-Za-z0-9]*)"
    r"_(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{3})"
    r"_(?P<tag>[A-Za-z0-9-]+)-p(?P<partition>[0-9]+)"
    r"_(?P<start>[0-9]{12,})-(?P<end>[0-9]{12,})"
    r"(?:_part(?P<part>[0-9]+)of(?P<parts>[0-9]+))?"
    r"\.csv"
)


@dataclass(frozen=True, slots=True)
class ParsedBatchName:
    """The parts of a name made by `batch_file_name`. `timestamp` is UTC, to the ms."""

    feed: AnyFeed
    prefix: str
    timestamp: datetime
    topic_tag: str
    partition: int
    start: int
    end: int
    part: int
    parts: int

    def file_name(self, part: int | None = None) -> str:
        """The name these parts make: of part `part` of the same batch, when given."""
        return batch_file_name(
            self.prefix,
            self.feed,
            self.timestamp,
            SourcePartition(self.topic_tag, self.partition),
            self.start,
            self.end,
            self.part if part is None else part,
            self.parts,
        )


def first_part_name(name: str) -> str:
    """The name of part 1 of the batch that file `name` belongs to (the batch's audit
    manifest is named after it); `name` itself when it is not a later part."""
    parsed = parse_batch_file_name(name)
    return name if parsed is None else parsed.file_name(part=1)


def is_valid_prefix(prefix: str) -> bool:
    """Whether `prefix` may lead file names: 1-64 of `[A-Za-z0-9_-]`, starting alphanumeric."""
    return _PREFIX.fullmatch(prefix) is not None


def batch_file_name(  # noqa: PLR0917 - the signature the publisher and ledger call
    prefix: str,
    feed: AnyFeed,
    first_event_at: datetime,
    source: SourcePartition,
    start: int,
    end: int,
    part: int = 1,
    parts: int = 1,
) -> str:
    """The file name of part `part` of `parts` of the batch covering offsets start..end.

    `first_event_at` must be timezone-aware; the name carries it in UTC. Raises
    ValueError for a bad prefix, offset range or part number.
    """
    if not is_valid_prefix(prefix):
        raise ValueError(f"invalid file prefix {prefix!r}")
    if first_event_at.utcoffset() is None:
        raise ValueError("first_event_at must be timezone-aware")
    if not 0 <= start <= end:
        raise ValueError(f"invalid offset range {start}..{end}")
    if not 1 <= part <= parts:
        raise ValueError(f"invalid part {part} of {parts}")
    suffix = f"_part{part}of{parts}" if parts > 1 else ""
    return (
        f"{prefix}_{feed.file_label}_{_timestamp(first_event_at)}"
        f"_{source.tag}-p{source.partition}_{start:012d}-{end:012d}{suffix}.csv"
    )


def parse_batch_file_name(name: str) -> ParsedBatchName | None:
    """The parts of `name`, or None when it is not a name `batch_file_name` would make."""
    match = _NAME.fullmatch(name)
    feed = FEEDS.labelled(match["label"]) if match is not None else None
    if match is None or feed is None:
        return None
    try:
        parsed = ParsedBatchName(
            feed=feed,
            prefix=match["prefix"],
            timestamp=datetime.strptime(match["ts"] + "000", "%Y-%m-%d-%H_%M_%S_%f").replace(
                tzinfo=UTC
            ),
            topic_tag=match["tag"],
            partition=int(match["partition"]),
            start=int(match["start"]),
            end=int(match["end"]),
            part=int(match["part"] or 1),
            parts=int(match["parts"] or 1),
        )
        rebuilt = parsed.file_name()
    except ValueError:
        return None
    # Only the canonical spelling is ours: no leading zeros, no `_part1of1`, no day 31 of
    # February. Comparing with a rebuild checks all of that in one place.
    return parsed if rebuilt == name else None


def _timestamp(moment: datetime) -> str:
    t = moment.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}-"
        f"{t.hour:02d}_{t.minute:02d}_{t.second:02d}_{t.microsecond // 1000:03d}"
    )
