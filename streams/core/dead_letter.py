"""Dead letters: what goes to the DLQ topic, with why and where it came from.

The value and key are the original bytes, untouched, so a re-drive sends exactly what the
producer sent. The headers carry the reason and the source coordinates. A value too large
for the DLQ to ever accept is cut to fit, with its original size and sha256 in headers
(`fitted`), rather than retried forever; such a dead letter cannot be re-driven.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

HEADER_PREFIX = "variance-sync."


def find_header(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The first header of that name, in any case (Kafka allows repeats)."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


def dead_letter_header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    """One of our `variance-sync.<name>` headers as text; None when absent or blank."""
    raw = find_header(headers, HEADER_PREFIX + name)
    if raw is None:
        return None
    return raw.decode("utf-8", "replace").strip() or None


class ErrorClass(StrEnum):
    DECODE = "decode"  # not readable as Avro single-object or JSON of the right kind
    INVALID = "invalid"  # readable, but breaks a validation rule
    UNROUTABLE = "unroutable"  # valid, but cannot be mapped to NetSuite with this config
    PERMISSION = "permission"  # valid, but logged by a role that may not log a variance
    INTERNAL = "internal"  # a bug in variance-sync; the event is kept for re-drive


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A consumed record, free of any Kafka client type."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> bytes | None:
        return find_header(self.headers, name)

    @property
    def content_type(self) -> str | None:
        raw = self.header("content-type")
        return raw.decode("latin-1") if raw is not None else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    error_class: ErrorClass
    reason: str

    def headers(self, failed_at: datetime) -> list[tuple[str, bytes]]:
        """The original headers (minus earlier DLQ ones), then ours."""
        moment = failed_at.isoformat()
        kept = [(k, v) for k, v in self.record.headers if not k.startswith(HEADER_PREFIX)]
        ours = {
            "error": _one_line(self.reason),
            "error-class": self.error_class.value,
            "source-topic": self.record.topic,
            "source-partition": str(self.record.partition),
            "source-offset": str(self.record.offset),
            "source-timestamp": ""
            if self.record.timestamp_ms is None
            else str(self.record.timestamp_ms),
            "failed-at": moment,
        }
        earlier = self.record.header(HEADER_PREFIX + "error")
        if earlier is not None:
            # A re-driven event that fails again carries both errors.
            ours["previous-error"] = earlier.decode("utf-8", "replace")
        return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in ours.items()]


def _one_line(text: str, limit: int = 2000) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def decode_headers(headers: Sequence[tuple[str, bytes]] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in (headers or ()))


TRUNCATED_FROM = HEADER_PREFIX + "truncated-from"
ORIGINAL_SHA256 = HEADER_PREFIX + "original-sha256"
# Room for a record's framing in its batch, beyond key, value and headers.
_RECORD_OVERHEAD = 512


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A dead letter as the DLQ topic receives it."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        framing = sum(len(k) + len(v) + 8 for k, v in self.headers)
        return len(self.key or b"") + len(self.value) + framing + _RECORD_OVERHEAD


def fitted(letter: DeadLetter, max_bytes: int, failed_at: datetime) -> DeadLetterRecord:
    """`letter` as a record of at most `max_bytes`: whole when it fits, else with its
    value cut to fit and headers giving the original size and sha256."""
    whole = DeadLetterRecord(
        letter.record.key, letter.record.value, tuple(letter.headers(failed_at))
    )
    if whole.size <= max_bytes:
        return whole
    value = letter.record.value
    extra = (
        (TRUNCATED_FROM, str(len(value)).encode()),
        (ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
    )
    cut = DeadLetterRecord(letter.record.key, b"", whole.headers + extra)
    room = max(0, max_bytes - cut.size)
    return DeadLetterRecord(cut.key, value[:room], cut.headers)
