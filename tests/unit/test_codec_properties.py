"""Property tests: valid events survive both wire forms; no input breaks the decoder."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    JSON_CONTENT_TYPE,
    DecodeError,
    Event,
    EventKind,
    InvalidEvent,
    decode,
    encode_avro,
    encode_json,
    validate_event,
    versions,
)
from schemas.codec import MARKER
from tests.unit.schemas_fixtures import strategies
from tests.unit.schemas_fixtures.events import NOW, count_data, variance_data

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

events = st.one_of(
    strategies.count_approved().map(lambda data: (EventKind.COUNT_APPROVED, data)),
    strategies.variance_logged().map(lambda data: (EventKind.VARIANCE_LOGGED, data)),
)
content_types = st.sampled_from([None, JSON_CONTENT_TYPE, "application/octet-stream"])
kinds = st.sampled_from(list(EventKind))


def decodes_or_refuses(payload: bytes, kind: EventKind, content_type: str | None) -> None:
    with contextlib.suppress(DecodeError):
        decode(payload, kind, content_type)


def problems_of(kind: EventKind, fields: dict[str, Any]) -> tuple[str, ...]:
    try:
        validate_event(kind, fields, now=NOW)
    except InvalidEvent as error:
        return error.problems
    return ()


@SETTINGS
@given(events)
def test_avro_round_trip(generated: tuple[EventKind, dict[str, Any]]) -> None:
    kind, data = generated
    event = validate_event(kind, data, now=NOW)
    decoded = decode(encode_avro(event), kind, None)
    assert validate_event(kind, decoded.data, now=NOW) == event


@SETTINGS
@given(events)
def test_json_round_trip(generated: tuple[EventKind, dict[str, Any]]) -> None:
    kind, data = generated
    event = validate_event(kind, data, now=NOW)
    decoded = decode(encode_json(event), kind, "application/json; charset=utf-8")
    again: Event = validate_event(kind, decoded.data, now=NOW)
    assert again == event
    assert again.model_dump(mode="json") == event.model_dump(mode="json")


@SETTINGS
@given(st.binary(max_size=300), kinds, content_types)
def test_arbitrary_bytes_only_raise_decode_error(
    payload: bytes, kind: EventKind, content_type: str | None
) -> None:
    decodes_or_refuses(payload, kind, content_type)


@SETTINGS
@given(st.data(), kinds)
def test_arbitrary_body_after_a_valid_header(data: st.DataObject, kind: EventKind) -> None:
    schema = data.draw(st.sampled_from(versions(kind)))
    body = data.draw(st.binary(max_size=300))
    decodes_or_refuses(MARKER + schema.fingerprint + body, kind, None)


@SETTINGS
@given(st.data(), events)
def test_damaged_encodings_only_raise_decode_error(
    data: st.DataObject, generated: tuple[EventKind, dict[str, Any]]
) -> None:
    kind, fields = generated
    event = validate_event(kind, fields, now=NOW)
    payload = bytearray(encode_avro(event))
    index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    if data.draw(st.booleans()):
        payload[index] = data.draw(st.integers(min_value=0, max_value=255))
    else:
        del payload[index:]
    decodes_or_refuses(bytes(payload), kind, None)


@SETTINGS
@given(kinds, st.data())
def test_arbitrary_field_values_only_raise_invalid_event(
    kind: EventKind, data: st.DataObject
) -> None:
    fields = count_data() if kind is EventKind.COUNT_APPROVED else variance_data()
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(strategies.json_values)
    for problem in problems_of(kind, fields):
        assert "\n" not in problem
        assert problem.startswith(name)
