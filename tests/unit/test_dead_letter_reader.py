"""The pure half of `variance-sync dlq`: header parsing, the re-drive ledger, counts, table
rows and payload rendering."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from schemas.codec import encode_avro, encode_json
from schemas.models import EventKind
from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.errors import UsageError
from streams.ops.dead_letter_reader import (
    DLQRecord,
    DLQState,
    Redrive,
    counts,
    history,
    list_rows,
    parse_record,
    parse_redrive,
    record_json,
    render_payload,
    show_bytes,
    target_partition,
)
from tests.factories import count, variance

COUNTS, VARIANCES = "hotwax.inventory.count-approved", "hotwax.inventory.variance-logged"
KINDS = {COUNTS: EventKind.COUNT_APPROVED, VARIANCES: EventKind.VARIANCE_LOGGED}
FAILED_AT = datetime(2024, 2, 29, 18, 0, 5, tzinfo=UTC)


def letter(
    offset: int = 0,
    *,
    error_class: ErrorClass = ErrorClass.UNROUTABLE,
    reason: str = "unknown facility 'STORE_9'",
    topic: str = VARIANCES,
    value: bytes = b"payload",
    headers: tuple[tuple[str, bytes], ...] = (),
) -> DLQRecord:
    """A DLQ record with the headers a worker writes."""
    source = SourceRecord(topic, 2, 40 + offset, 1_709_229_600_000, b"STORE_9", value, headers)
    written = DeadLetter(source, error_class, reason).headers(FAILED_AT)
    return parse_record(offset, 1_709_229_605_000, b"STORE_9", value, written)


def redrive(offset: int, dlq_topic: str = "variance-sync.dlq") -> Redrive:
    return Redrive(dlq_topic, offset, FAILED_AT, VARIANCES, 2, 100 + offset, "boom", "decode")


def test_a_worker_written_letter_parses_back_to_its_parts() -> None:
    record = letter(3, headers=(("content-type", b"application/json"),))
    assert record.error == "unknown facility 'STORE_9'"
    assert record.error_class == "unroutable"
    assert (record.source_topic, record.source_partition, record.source_offset) == (
        VARIANCES,
        2,
        43,
    )
    assert record.source_timestamp_ms == 1_709_229_600_000
    assert record.failed_at == FAILED_AT
    assert record.previous_error is None
    assert record.source_label == f"{VARIANCES}[2]@43"
    assert ("content-type", b"application/json") in record.headers


def test_a_letter_that_fails_again_carries_the_previous_error() -> None:
    first = letter(0, reason="first problem")
    again = SourceRecord(VARIANCES, 2, 99, None, b"STORE_9", b"x", first.headers)
    record = parse_record(
        5, None, b"STORE_9", b"x", DeadLetter(again, ErrorClass.DECODE, "second").headers(FAILED_AT)
    )
    assert (record.error, record.previous_error, record.error_class) == (
        "second",
        "first problem",
        "decode",
    )
    assert record.source_timestamp_ms is None


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("variance-sync.source-partition", b"-1"), ("variance-sync.source-offset", b"\xff")],
        [("variance-sync.failed-at", b"soon"), ("variance-sync.error", b"   ")],
        [("variance-sync.source-partition", "٣".encode()), ("variance-sync.error-class", None)],
    ],
)
def test_missing_or_odd_headers_parse_as_unknown(
    headers: Sequence[tuple[str, bytes | None]] | None,
) -> None:
    record = parse_record(7, None, None, None, headers)
    assert (record.error, record.error_class, record.source_topic) == (None, None, None)
    assert (record.source_partition, record.source_offset, record.failed_at) == (None, None, None)
    assert record.value == b""
    assert record.source_label == "unknown[unknown]@unknown"


def test_a_failed_at_without_zone_is_taken_as_utc() -> None:
    record = parse_record(0, None, None, b"", [("variance-sync.failed-at", b"2024-02-29T18:00:05")])
    assert record.failed_at == FAILED_AT


def test_redrive_records_round_trip_and_junk_is_ignored() -> None:
    original = redrive(4)
    key, value = original.encode()
    assert key == b"4"
    assert json.loads(value)["redriven_at"] == "2024-02-29T18:00:05+00:00"
    assert parse_redrive(key, value) == original
    assert parse_redrive(b"5", value) is None  # the key must agree with the value
    for junk in (b"", b"not json", b"[1]", b'{"dlq_offset": 4}', b"\xff"):
        assert parse_redrive(key, junk) is None


def test_history_keeps_this_dlq_topic_in_order() -> None:
    first, second, other = redrive(1), redrive(1), redrive(1, dlq_topic="another.dlq")
    assert history([first, other, redrive(2), second], "variance-sync.dlq") == {
        1: [first, second],
        2: [redrive(2)],
    }


RECORDS = (
    letter(0),
    letter(1, error_class=ErrorClass.DECODE, reason="truncated header: 4 bytes"),
    letter(2, reason="unknown facility 'STORE_8'"),
    letter(3, topic="somewhere.else"),
    parse_record(4, None, None, b"", []),
)


def test_counts_by_class_and_reason() -> None:
    by_class, by_reason = counts(RECORDS)
    assert by_class == {"unroutable": 3, "decode": 1, "unknown": 1}
    assert by_reason == {
        "unknown facility 'STORE_9'": 2,
        "truncated header: 4 bytes": 1,
        "unknown facility 'STORE_8'": 1,
        "unknown": 1,
    }


def test_unknown_offsets_are_a_usage_error_naming_what_there_is() -> None:
    state = DLQState("variance-sync.dlq", RECORDS, {})
    assert state.record(2) is RECORDS[2]
    with pytest.raises(
        UsageError, match=r"^no record at offset 9 in variance-sync.dlq \(it holds offsets 0-4\)$"
    ):
        state.record(9)
    with pytest.raises(UsageError, match=r"\(it is empty\)$"):
        DLQState("variance-sync.dlq", (), {}).record(0)


def test_the_source_partition_is_kept_unless_it_is_unknown_or_gone() -> None:
    assert target_partition(letter(0), 4) == 2
    assert target_partition(letter(0), 2) is None
    assert target_partition(RECORDS[4], 4) is None


def test_list_rows_shorten_only_the_reason_to_fit() -> None:
    long = letter(0, reason="x" * 300)
    [row] = list_rows([long], [[redrive(0), redrive(0)]], 160)
    assert row[:5] == (
        "0",
        "2024-02-29 18:00Z",
        f"{VARIANCES}[2]@40",
        "unroutable",
        "yes 2024-02-29 18:00Z (2x)",
    )
    # Widths 6 ("offset"), 17, 38, 10 and 26, three between columns, two for the edges.
    assert len(row[5]) == 160 - (6 + 17 + 38 + 10 + 26 + 5 * 3 + 2)
    assert row[5].endswith("…")
    [row] = list_rows([RECORDS[4]], [[]], 200)
    assert row == ("4", "unknown", "unknown[unknown]@unknown", "unknown", "no", "unknown")


def test_json_payloads_are_pretty_printed() -> None:
    body = encode_json(variance(-1, event_id="j-1"))
    record = letter(0, value=body, headers=(("content-type", b"application/json"),))
    payload = render_payload(record, KINDS)
    assert payload.form == "json"
    assert payload.data["event_id"] == "j-1"
    assert payload.text == json.dumps(json.loads(body), indent=2, sort_keys=True)
    # A JSON body sent without its content type is still shown as JSON.
    assert render_payload(letter(0, value=b' {"a": 1}'), KINDS).data == {"a": 1}


def test_avro_payloads_are_decoded_with_the_source_topics_kind_without_validation() -> None:
    invalid = variance(-1, event_id="a-1").model_copy(update={"quantity": 0})
    payload = render_payload(letter(0, value=encode_avro(invalid)), KINDS)
    assert payload.form == "VarianceLogged.v2"
    assert (payload.data["quantity"], payload.data["occurred_at"]) == (
        0,
        "2024-02-29T18:00:00+00:00",
    )
    assert '"event_id": "a-1"' in payload.text
    # With no known source topic, each kind is tried.
    unknown_source = parse_record(0, None, None, encode_avro(count(count_id="CC7")), [])
    assert render_payload(unknown_source, KINDS).data["count_id"] == "CC7"


def test_undecodable_payloads_are_a_short_hex_dump_with_the_reason() -> None:
    payload = render_payload(letter(0, value=b"\xc3\x01\x00\x01"), KINDS)
    assert payload.form == "hex"
    assert payload.data is None
    assert payload.problem is not None
    assert payload.problem.startswith("truncated header")
    assert payload.text == "0000  " + "c3 01 00 01".ljust(47) + "  ...."
    broken_json = render_payload(
        letter(0, value=b"{oops", headers=(("content-type", b"application/json"),)), KINDS
    )
    assert (broken_json.form, broken_json.problem) == ("hex", "not JSON (JSONDecodeError)")
    big = render_payload(letter(0, value=bytes(range(256)) * 2), KINDS)
    lines = big.text.splitlines()
    assert len(lines) == 17
    assert lines[2] == "0020  20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f   !\"#$%&'()*+,-./"
    assert lines[-1] == "... 256 more bytes"
    assert render_payload(letter(0, value=b""), KINDS).text == "(empty)"


def test_keys_and_header_values_show_as_text_or_hex() -> None:
    assert show_bytes(None) is None
    assert show_bytes(b"STORE_1") == "STORE_1"
    assert show_bytes(b"\xff\x00") == "0xff00"
    assert show_bytes(b"tab\there") == "0x7461620968657265"


def test_record_json_holds_everything() -> None:
    record = letter(1, value=b"\x00")
    data = record_json(record, [redrive(1)], render_payload(record, KINDS))
    assert data["value_base64"] == "AA=="
    assert data["failed_at"] == "2024-02-29T18:00:05+00:00"
    assert data["redrives"] == [redrive(1).to_json()]
    assert data["payload"] == {"form": "hex", "data": None, "problem": None}
    assert ["variance-sync.error-class", "unroutable"] in data["headers"]
    json.dumps(data)  # nothing in it needs a custom encoder
