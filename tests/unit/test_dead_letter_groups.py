"""Dead letters grouped by source event, and what `dlq redrive` chooses from them."""

from __future__ import annotations

import pytest

from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.ops.dead_letter_groups import select, source_events
from streams.ops.dead_letter_reader import DLQRecord, Redrive, parse_record
from tests.unit.test_dead_letter_reader import FAILED_AT, KINDS, RECORDS, VARIANCES, letter, redrive


def again_at(offset: int, source_offset: int, reason: str = "still unknown") -> DLQRecord:
    """A re-driven copy that failed again: the worker names the re-drive's coordinates."""
    source = SourceRecord(VARIANCES, 2, source_offset, 1_709_229_600_000, b"STORE_9", b"payload")
    written = DeadLetter(source, ErrorClass.UNROUTABLE, reason).headers(FAILED_AT)
    return parse_record(offset, 1_709_229_605_000, b"STORE_9", b"payload", written)


def test_copies_of_one_source_event_are_one_event() -> None:
    # A worker of an older version sent offset 40 twice.
    records = (letter(0), letter(1), parse_record(2, None, None, b"", []), letter(0))
    duplicate = parse_record(3, None, b"STORE_9", b"payload", records[0].headers)
    events = source_events((*records[:3], duplicate), {})
    assert [event.offsets for event in events] == [(0, 3), (1,), (2,)]
    assert events[0].latest is duplicate


def test_a_redrive_that_fails_again_joins_its_source_event() -> None:
    first = letter(0)  # variance-logged[2]@40
    failed_again = again_at(5, 100)  # re-driven to offset 100, and failed there
    redrives = {0: [redrive(0)]}  # redrive(0) targets variance-logged[2]@100
    [event] = source_events((first, failed_again), redrives)
    assert event.offsets == (0, 5)
    assert event.latest is failed_again
    assert event.redrives == (redrive(0),)


def test_a_redrive_that_failed_again_is_not_sent_again_without_again() -> None:
    events = source_events((letter(0), again_at(5, 100), letter(1)), {0: [redrive(0)]})
    selection = select(events, KINDS)
    assert [event.latest.offset for event in selection.chosen] == [1]
    assert [event.latest.offset for event in selection.already] == [5]
    again = select(events, KINDS, again=True)
    # The event is sent once, as its latest dead letter, never also as its first.
    assert [event.latest.offset for event in again.chosen] == [5, 1]


@pytest.mark.parametrize(
    ("options", "chosen"),
    [
        ({}, [0, 1, 2]),
        ({"reason": "STORE_8"}, [2]),
        ({"reason": "unknown FACILITY"}, [0, 2]),
        ({"error_class": "decode"}, [1]),
        ({"error_class": "unknown"}, []),
        ({"offsets": [1, 2]}, [1, 2]),
        ({"offsets": [2], "error_class": "decode"}, []),
    ],
)
def test_select_filters_by_reason_class_and_offset(
    options: dict[str, object], chosen: list[int]
) -> None:
    selection = select(source_events(RECORDS, {}), KINDS, **options)  # type: ignore[arg-type]
    assert [event.latest.offset for event in selection.chosen] == chosen


def test_select_skips_events_without_an_input_topic_and_those_already_redriven() -> None:
    redriven: dict[int, list[Redrive]] = {0: [redrive(0)]}
    selection = select(source_events(RECORDS, redriven), KINDS)
    assert [e.latest.offset for e in selection.chosen] == [1, 2]
    assert [e.latest.offset for e in selection.already] == [0]
    assert [e.latest.offset for e in selection.no_source] == [3, 4]
    again = select(source_events(RECORDS, redriven), KINDS, again=True)
    assert [e.latest.offset for e in again.chosen] == [0, 1, 2]
