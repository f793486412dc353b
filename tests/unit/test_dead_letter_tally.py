"""Dead-letter counts for the console: by class and reason, bounded, re-drives once."""

from __future__ import annotations

from streams.core.dead_letter import HEADER_PREFIX
from streams.core.dead_letter_tally import OTHER_REASONS, UNKNOWN, DeadLetterTally


def headers(error_class: str | None, reason: str | None) -> list[tuple[str, bytes | None]]:
    found: list[tuple[str, bytes | None]] = [("content-type", b"application/json")]
    if error_class is not None:
        found.append((HEADER_PREFIX + "error-class", error_class.encode()))
    if reason is not None:
        found.append((HEADER_PREFIX + "error", reason.encode()))
    return found


def test_records_are_counted_by_class_and_by_reason() -> None:
    tally = DeadLetterTally()
    for error_class, reason in [("decode", "no marker"), ("decode", "no marker"), ("invalid", "q")]:
        tally.add(headers(error_class, reason))
    assert tally.to_json() == {
        "dead_letters": 3,
        "redriven": 0,
        "by_class": {"decode": 2, "invalid": 1},
        "by_reason": [
            {"error_class": "decode", "reason": "no marker", "count": 2},
            {"error_class": "invalid", "reason": "q", "count": 1},
        ],
        "distinct_reasons": 2,
    }


def test_a_record_without_our_headers_is_unknown() -> None:
    tally = DeadLetterTally()
    tally.add(headers(None, None))
    tally.add([(HEADER_PREFIX + "error", None), (HEADER_PREFIX + "error-class", b"  ")])
    assert tally.by_class == {UNKNOWN: 2}
    assert tally.by_reason == {(UNKNOWN, UNKNOWN): 2}


def test_a_flood_of_distinct_reasons_is_bounded() -> None:
    tally = DeadLetterTally(max_reasons=3)
    for number in range(10):
        tally.add(headers("invalid", f"quantity {number}"))
    tally.add(headers("invalid", "quantity 0"))
    assert tally.total == 11
    assert len(tally.by_reason) == 4
    assert tally.by_reason[("invalid", "quantity 0")] == 2
    assert tally.by_reason[("invalid", OTHER_REASONS)] == 7


def test_a_record_sent_back_twice_is_re_driven_once() -> None:
    tally = DeadLetterTally()
    for key in (b"4", b"4", b"7", b"not an offset", None):
        tally.add_redrive(key)
    assert tally.to_json()["redriven"] == 2


def test_the_most_common_reasons_come_first_and_are_cut_at_top() -> None:
    tally = DeadLetterTally()
    for number in range(5):
        for _ in range(number + 1):
            tally.add(headers("invalid", f"r{number}"))
    shown = tally.to_json(top=2)["by_reason"]
    assert [r["reason"] for r in shown] == ["r4", "r3"]
