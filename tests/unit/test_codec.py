"""Wire format: Avro single-object encoding and JSON bodies, and every decode failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import pytest

from schemas import (
    JSON_CONTENT_TYPE,
    CountApproved,
    DecodeError,
    Event,
    EventKind,
    InvalidEvent,
    ValidationLimits,
    VarianceLogged,
    decode,
    decode_event,
    encode_avro,
    encode_json,
    latest,
    validate_event,
    versions,
)
from schemas.codec import MARKER
from tests.unit.schemas_fixtures.events import (
    NOW,
    count_data,
    encode_with,
    golden,
    line_data,
    variance_data,
)

COUNT: Final = EventKind.COUNT_APPROVED
VARIANCE: Final = EventKind.VARIANCE_LOGGED
LIMITS = ValidationLimits()


def a_count() -> CountApproved:
    return validate_event(COUNT, golden("count_approved"), now=NOW)


def a_variance() -> VarianceLogged:
    return validate_event(VARIANCE, golden("variance_logged"), now=NOW)


def decode_error(payload: bytes, kind: EventKind, content_type: str | None = None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(payload, kind, content_type)
    return str(caught.value)


def test_avro_header_is_marker_and_latest_fingerprint() -> None:
    payload = encode_avro(a_count())
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == latest(COUNT).fingerprint
    assert encode_avro(a_variance())[2:10] == latest(VARIANCE).fingerprint


@pytest.mark.parametrize("make", [a_count, a_variance])
def test_avro_round_trip(make: Callable[[], Event]) -> None:
    event = make()
    decoded = decode(encode_avro(event), event.KIND, None)
    assert decoded.schema_version == latest(event.KIND).label
    assert decoded.data["occurred_at"] == event.occurred_at
    assert decoded.data["occurred_at"].tzinfo == UTC
    assert validate_event(event.KIND, decoded.data, now=NOW) == event


def test_v1_count_is_read_with_the_v2_reader() -> None:
    event = validate_event(COUNT, count_data(), now=NOW)
    payload = encode_with(versions(COUNT)[0], event)
    decoded = decode(payload, COUNT, None)
    assert decoded.schema_version == "CountApproved.v1"
    assert decoded.data["lines"][0]["decision_outcome"] is None
    assert validate_event(COUNT, decoded.data, now=NOW) == event


def test_v1_writer_drops_decision_outcome() -> None:
    event = validate_event(
        COUNT, count_data(lines=[line_data(decision_outcome="SKIPPED")]), now=NOW
    )
    decoded = decode(encode_with(versions(COUNT)[0], event), COUNT, None)
    assert decoded.data["lines"][0]["decision_outcome"] is None
    assert decode(encode_avro(event), COUNT, None).data["lines"][0]["decision_outcome"] == "SKIPPED"


@pytest.mark.parametrize("make", [a_count, a_variance])
def test_json_round_trip(make: Callable[[], Event]) -> None:
    event = make()
    payload = encode_json(event)
    assert json.loads(payload) == event.model_dump(mode="json")
    decoded = decode(payload, event.KIND, JSON_CONTENT_TYPE)
    assert decoded.schema_version == "json"
    assert validate_event(event.KIND, decoded.data, now=NOW) == event


def test_json_keeps_unicode_as_utf8() -> None:
    event = validate_event(VARIANCE, variance_data(comments="caf\u00e9 \U0001f4e6"), now=NOW)
    assert "caf\u00e9 \U0001f4e6".encode() in encode_json(event)
    assert decode_event(encode_json(event), VARIANCE, JSON_CONTENT_TYPE, LIMITS, NOW)[0] == event


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"],
)
def test_json_content_types(content_type: str) -> None:
    payload = json.dumps(variance_data()).encode()
    assert decode(payload, VARIANCE, content_type).data == variance_data()


@pytest.mark.parametrize("content_type", [None, "", "avro/binary", "application/avro", "text/json"])
def test_other_content_types_mean_avro(content_type: str | None) -> None:
    assert decode(encode_avro(a_variance()), VARIANCE, content_type).schema_version.endswith("v2")
    assert "marker" in decode_error(json.dumps(variance_data()).encode(), VARIANCE, content_type)


def test_json_from_a_simple_publisher() -> None:
    body = {**count_data(), "occurred_at": "2024-02-29T09:04:05-06:00", "source": "pos-7"}
    event, version = decode_event(json.dumps(body).encode(), COUNT, "application/json", LIMITS, NOW)
    assert version == "json"
    assert isinstance(event, CountApproved)
    assert event.occurred_at == datetime(2024, 2, 29, 15, 4, 5, tzinfo=UTC)


def test_decode_event_returns_model_and_version() -> None:
    event, version = decode_event(encode_avro(a_count()), COUNT, None, LIMITS, NOW)
    assert (event, version) == (a_count(), "CountApproved.v2")


def test_decode_event_validates() -> None:
    event = validate_event(VARIANCE, variance_data(quantity=500), now=NOW)
    payload = encode_avro(event)
    with pytest.raises(InvalidEvent, match=r"quantity: 500 is beyond the limit of \+/-100"):
        decode_event(payload, VARIANCE, None, ValidationLimits(max_abs_quantity=100), NOW)


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("content_type", [None, JSON_CONTENT_TYPE])
def test_empty_payload(kind: EventKind, content_type: str | None) -> None:
    assert decode_error(b"", kind, content_type) == "empty payload"


@pytest.mark.parametrize("length", [1, 2, 9])
def test_truncated_header(length: int) -> None:
    payload = encode_avro(a_count())[:length]
    assert decode_error(payload, COUNT) == (
        f"truncated header: {length} bytes, Avro single-object encoding needs 10 before the body"
    )


def test_header_without_body() -> None:
    payload = encode_avro(a_count())[:10]
    assert decode_error(payload, COUNT) == (
        "truncated CountApproved.v2 body: the payload ends at byte 10 in the middle of a field"
    )


def test_truncated_body() -> None:
    payload = encode_avro(a_count())
    assert decode_error(payload[:-3], COUNT).startswith("truncated CountApproved.v2 body: ")


def test_bad_marker() -> None:
    payload = b"\xc3\x02" + encode_avro(a_count())[2:]
    assert decode_error(payload, COUNT) == (
        "no Avro single-object marker: expected c3 01, got c3 02 "
        "(a JSON body needs content-type application/json)"
    )


def test_unknown_fingerprint() -> None:
    payload = MARKER + bytes.fromhex("0123456789abcdef") + encode_avro(a_count())[10:]
    assert decode_error(payload, COUNT) == (
        "unknown schema fingerprint 0123456789abcdef: not a known version of count-approved "
        "(is the producer newer than this worker?)"
    )


def test_schema_of_the_other_kind() -> None:
    v1_count = encode_with(versions(COUNT)[0], a_count())
    assert (
        decode_error(v1_count, VARIANCE) == "schema CountApproved.v1 on the variance-logged topic"
    )
    variance = encode_avro(a_variance())
    assert decode_error(variance, COUNT) == "schema VarianceLogged.v2 on the count-approved topic"


@pytest.mark.parametrize("extra", [b"\x00", b"trailing"])
def test_trailing_bytes(extra: bytes) -> None:
    payload = encode_avro(a_variance()) + extra
    assert decode_error(payload, VARIANCE) == (
        f"{len(extra)} trailing bytes after the VarianceLogged.v2 body"
    )


@pytest.mark.parametrize(
    ("body", "got"), [(b"[]", "list"), (b'"x"', "str"), (b"7", "int"), (b"null", "NoneType")]
)
def test_json_that_is_not_an_object(body: bytes, got: str) -> None:
    assert decode_error(body, VARIANCE, JSON_CONTENT_TYPE) == (
        f"JSON body must be an object, not {got}"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": "\xff"}', "JSON body is not valid UTF-8 (byte 7)"),
        ('{"a": 1}'.encode("utf-16"), "JSON body is not valid UTF-8 (byte 0)"),
        (b'{"a": ', "JSON body does not parse: Expecting value at character 6"),
        (b"\xef\xbb\xbf{}", "JSON body does not parse: Unexpected UTF-8 BOM"),
        (b"[" * 100_000, "JSON body does not parse (RecursionError)"),
        (b'{"q": ' + b"9" * 5000 + b"}", "JSON body does not parse (ValueError)"),
    ],
)
def test_json_that_does_not_decode(body: bytes, message: str) -> None:
    assert decode_error(body, COUNT, JSON_CONTENT_TYPE).startswith(message)


def test_json_with_a_wrong_shape_is_invalid_not_undecodable() -> None:
    payload = json.dumps({"event_id": "e1"}).encode()
    assert decode(payload, VARIANCE, JSON_CONTENT_TYPE).data == {"event_id": "e1"}
    with pytest.raises(InvalidEvent, match="occurred_at: Field required"):
        decode_event(payload, VARIANCE, JSON_CONTENT_TYPE, LIMITS, NOW)


def test_decode_error_is_one_line() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b'{"a":\n\n', COUNT, JSON_CONTENT_TYPE)
    assert "\n" not in caught.value.reason
