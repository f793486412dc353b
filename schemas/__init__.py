"""The event contract: Avro schemas, pydantic models, the wire codec and their errors.

Typical use on the consuming side::

    event, version = decode_event(payload, EventKind.COUNT_APPROVED, content_type, limits, now)

`DecodeError` and `InvalidEvent` (both `SchemaError`) mean the event is dead-lettered.
"""

from schemas.codec import (
    JSON_CONTENT_TYPE,
    Decoded,
    decode,
    decode_event,
    encode_avro,
    encode_json,
)
from schemas.exceptions import DecodeError, InvalidEvent, SchemaError
from schemas.models import (
    CountApproved,
    CountLine,
    DecisionOutcome,
    Event,
    EventKind,
    ValidationLimits,
    VarianceLogged,
    validate_event,
)
from schemas.registry import SchemaVersion, by_fingerprint, latest, versions

__all__ = [
    "JSON_CONTENT_TYPE",
    "CountApproved",
    "CountLine",
    "DecisionOutcome",
    "DecodeError",
    "Decoded",
    "Event",
    "EventKind",
    "InvalidEvent",
    "SchemaError",
    "SchemaVersion",
    "ValidationLimits",
    "VarianceLogged",
    "by_fingerprint",
    "decode",
    "decode_event",
    "encode_avro",
    "encode_json",
    "latest",
    "validate_event",
    "versions",
]
