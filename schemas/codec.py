"""Wire format of the events: Avro single-object encoding, or JSON for simple publishers.

An Avro payload is the marker `C3 01`, the writer schema's 8-byte little-endian CRC-64-AVRO
fingerprint, then the schemaless Avro body. The reader finds the writer schema by
fingerprint and resolves it to the latest version of the topic's kind, so producers on
older versions keep working. Everything schema-related is prepared at import; a call
does one dictionary lookup and one fastavro read or write.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastavro import schemaless_reader, schemaless_writer

from schemas import registry
from schemas.exceptions import DecodeError
from schemas.models import Event, EventKind, ValidationLimits, validate_event
from schemas.registry import SchemaVersion

MARKER: Final = b"\xc3\x01"
HEADER_LENGTH: Final = len(MARKER) + 8
JSON_CONTENT_TYPE: Final = "application/json"
JSON_VERSION: Final = "json"


@dataclass(frozen=True, slots=True)
class Decoded:
    """Event data ready for `validate_event`, and the schema it was written with."""

    data: dict[str, Any]
    schema_version: str  # such as CountApproved.v2, or "json"


@dataclass(frozen=True, slots=True)
class _Reader:
    writer: SchemaVersion
    # None when the writer is the latest version, which spares fastavro a resolution pass.
    reader_schema: dict[str, Any] | None


_LATEST: Final = {kind: registry.latest(kind) for kind in EventKind}
_READERS: Final = {
    schema.fingerprint: _Reader(
        schema, None if schema == _LATEST[schema.kind] else _LATEST[schema.kind].parsed
    )
    for kind in EventKind
    for schema in registry.versions(kind)
}


def encode_avro(event: Event) -> bytes:
    """Single-object encoding with the latest schema of the event's kind."""
    schema = _LATEST[event.KIND]
    out = io.BytesIO()
    out.write(MARKER)
    out.write(schema.fingerprint)
    # Python-mode dump keeps occurred_at a datetime, which fastavro writes as timestamp-millis.
    schemaless_writer(out, schema.parsed, event.model_dump())
    return out.getvalue()


def encode_json(event: Event) -> bytes:
    """The JSON form: UTF-8, `occurred_at` as ISO-8601 in UTC with milliseconds."""
    return event.model_dump_json().encode()


def decode(payload: bytes, kind: EventKind, content_type: str | None) -> Decoded:
    """Decode one message value; raises `DecodeError` and nothing else, whatever the bytes."""
    if not payload:
        raise DecodeError("empty payload")
    if is_json(content_type):
        return Decoded(_decode_json(payload), JSON_VERSION)
    return _decode_avro(payload, kind)


def decode_event(
    payload: bytes,
    kind: EventKind,
    content_type: str | None,
    limits: ValidationLimits,
    now: datetime | None,
) -> tuple[Event, str]:
    """Decode and validate: the event model and its schema version label. `now` is what
    the future bound is measured from (`schemas.models.validate_event`).

    Raises `DecodeError` or `InvalidEvent`.
    """
    decoded = decode(payload, kind, content_type)
    return validate_event(kind, decoded.data, limits, now), decoded.schema_version


def is_json(content_type: str | None) -> bool:
    """Whether a content-type header selects the JSON form (parameters are ignored)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == JSON_CONTENT_TYPE


def _decode_json(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"JSON body is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"JSON body does not parse: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError) as exc:  # too many digits in a number; deep nesting
        raise DecodeError(f"JSON body does not parse ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DecodeError(f"JSON body must be an object, not {type(data).__name__}")
    return data


def _decode_avro(payload: bytes, kind: EventKind) -> Decoded:
    if len(payload) < HEADER_LENGTH:
        raise DecodeError(
            f"truncated header: {len(payload)} bytes, Avro single-object encoding needs "
            f"{HEADER_LENGTH} before the body"
        )
    if payload[:2] != MARKER:
        raise DecodeError(
            f"no Avro single-object marker: expected c3 01, got {payload[:2].hex(' ')} "
            "(a JSON body needs content-type application/json)"
        )
    fp = payload[2:HEADER_LENGTH]
    reader = _READERS.get(fp)
    if reader is None:
        raise DecodeError(
            f"unknown schema fingerprint {fp.hex()}: not a known version of {kind} "
            "(is the producer newer than this worker?)"
        )
    writer = reader.writer
    if writer.kind is not kind:
        raise DecodeError(f"schema {writer.label} on the {kind} topic")
    body = io.BytesIO(payload)
    body.seek(HEADER_LENGTH)
    try:
        record = schemaless_reader(body, writer.parsed, reader.reader_schema)
    # fastavro documents no error contract for corrupt input: EOFError, ValueError,
    # IndexError, OverflowError, UnicodeDecodeError and more all occur. A poison message
    # must become a DecodeError (and a dead letter), never stop the partition.
    except EOFError as exc:
        raise DecodeError(
            f"truncated {writer.label} body: the payload ends at byte {len(payload)} "
            "in the middle of a field"
        ) from exc
    except Exception as exc:
        raise DecodeError(
            f"corrupt {writer.label} body: {type(exc).__name__} near byte {body.tell()}"
        ) from exc
    if body.tell() != len(payload):
        raise DecodeError(
            f"{len(payload) - body.tell()} trailing bytes after the {writer.label} body"
        )
    if not isinstance(record, dict):
        raise DecodeError(f"{writer.label} body is not a record")
    return Decoded(record, writer.label)
