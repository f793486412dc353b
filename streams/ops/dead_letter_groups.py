"""Dead letters grouped by the source event they stand for. Pure.

One input event can leave more than one record in the DLQ: a worker of an older version
(or one killed between its send and its progress write) sent it twice, or a re-drive
brought it back and it failed again, which dead-letters the re-driven copy under the
coordinates the re-drive gave it. `dlq list` counts and shows source events, and
`dlq redrive` sends each one once, and a re-driven one again only with `--again`.

A group's *latest* record is the one to show and to send: it carries the newest error
(and the earlier one in `variance-sync.previous-error`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.ops.dead_letter_reader import DLQRecord, Redrive, matches

Coordinates = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Every dead letter of one input event, oldest first, and every re-drive of them."""

    records: tuple[DLQRecord, ...]
    redrives: tuple[Redrive, ...]

    @property
    def latest(self) -> DLQRecord:
        return self.records[-1]

    @property
    def first(self) -> DLQRecord:
        return self.records[0]

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(record.offset for record in self.records)


def _source(record: DLQRecord) -> Coordinates | None:
    if record.source_topic is None or record.source_partition is None:
        return None
    if record.source_offset is None:
        return None
    return (record.source_topic, record.source_partition, record.source_offset)


def source_events(
    records: Sequence[DLQRecord], redrives: Mapping[int, Sequence[Redrive]]
) -> list[SourceEvent]:
    """`records` (in DLQ offset order) grouped by source event, in order of first failure."""
    groups: list[list[DLQRecord]] = []
    by_source: dict[Coordinates, int] = {}  # source coordinates -> group
    by_offset: dict[int, int] = {}  # DLQ offset -> group
    for record in records:
        source = _source(record)
        group = by_source.get(source) if source is not None else None
        if group is None:
            group = len(groups)
            groups.append([])
        groups[group].append(record)
        by_offset[record.offset] = group
        if source is not None:
            by_source[source] = group
        for redrive in redrives.get(record.offset, ()):
            # The re-driven copy, should it fail again, arrives with these coordinates.
            target = (redrive.target_topic, redrive.target_partition, redrive.target_offset)
            by_source.setdefault(target, group)
    return [
        SourceEvent(
            tuple(group),
            tuple(r for record in group for r in redrives.get(record.offset, ())),
        )
        for group in groups
    ]


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: tuple[SourceEvent, ...]
    already: tuple[SourceEvent, ...]  # matched, but re-driven before (and no --again)
    no_source: tuple[SourceEvent, ...]  # matched, but with no input topic to go back to


def select(
    events: Sequence[SourceEvent],
    inputs: Iterable[str],
    *,
    reason: str | None = None,
    error_class: str | None = None,
    offsets: Sequence[int] = (),
    again: bool = False,
) -> Selection:
    """The source events to re-drive; filters apply to each event's latest dead letter,
    and `offsets` choose an event by any of its records."""
    wanted = set(offsets)
    input_topics = set(inputs)
    chosen: list[SourceEvent] = []
    already: list[SourceEvent] = []
    no_source: list[SourceEvent] = []
    for event in events:
        if wanted and not wanted & set(event.offsets):
            continue
        latest = event.latest
        if not matches(latest, reason, error_class):
            continue
        if latest.source_topic not in input_topics:
            # Sending bytes to a topic the worker does not read would do nothing useful,
            # and to an arbitrary topic named in a header could do harm.
            no_source.append(event)
        elif event.redrives and not again:
            already.append(event)
        else:
            chosen.append(event)
    return Selection(tuple(chosen), tuple(already), tuple(no_source))
