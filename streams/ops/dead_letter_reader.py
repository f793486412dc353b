"""Dead letters as the `dlq` commands see them: parsed headers, re-drive records, selection,
counts and payload rendering. Pure; `streams.ops.dlq` does the Kafka I/O.

A DLQ record may come from an older worker, another tool or a hand-made test, so every
header is optional: a missing or unreadable one parses to None ("unknown"), never to an
error.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.codec import MARKER, decode, is_json
from schemas.exceptions import DecodeError
from schemas.models import EventKind
from streams.core.dead_letter import dead_letter_header, find_header
from streams.errors import UsageError

UNKNOWN = "unknown"
HEX_DUMP_LIMIT = 256
# The reason comes last: it is the one column shortened to fit the terminal.
LIST_COLUMNS = ("offset", "failed at", "source", "class", "re-driven", "reason")
TABLE_GAP = 3  # what a SIMPLE_HEAD table puts between columns, padding included
MIN_REASON = 10


@dataclass(frozen=True, slots=True)
class DLQRecord:
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    error: str | None
    error_class: str | None
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    source_timestamp_ms: int | None
    failed_at: datetime | None
    previous_error: str | None

    @property
    def source_label(self) -> str:
        topic = self.source_topic or UNKNOWN
        partition = UNKNOWN if self.source_partition is None else str(self.source_partition)
        offset = UNKNOWN if self.source_offset is None else str(self.source_offset)
        return f"{topic}[{partition}]@{offset}"


@dataclass(frozen=True, slots=True)
class Redrive:
    """One entry of the re-drive ledger: a DLQ record sent back to its source topic."""

    dlq_topic: str
    dlq_offset: int
    redriven_at: datetime
    target_topic: str
    target_partition: int
    target_offset: int
    error: str | None
    error_class: str | None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "redriven_at": self.redriven_at.isoformat()}

    def encode(self) -> tuple[bytes, bytes]:
        """The ledger record's key (the DLQ offset) and value."""
        value = json.dumps(self.to_json(), sort_keys=True).encode()
        return str(self.dlq_offset).encode(), value


@dataclass(frozen=True, slots=True)
class Payload:
    form: str  # "json", an Avro schema label such as "VarianceLogged.v1", or "hex"
    text: str  # what `dlq show` prints
    data: Any  # the decoded object for --json; None for a hex dump
    problem: str | None = None  # why a payload that looked decodable is shown as hex


@dataclass(frozen=True, slots=True)
class DLQState:
    """What the DLQ holds up to its high watermark, and the re-drives of each offset."""

    topic: str
    records: tuple[DLQRecord, ...]
    redrives: Mapping[int, Sequence[Redrive]]

    def record(self, offset: int) -> DLQRecord:
        for record in self.records:
            if record.offset == offset:
                return record
        held = (
            f"it holds offsets {self.records[0].offset}-{self.records[-1].offset}"
            if self.records
            else "it is empty"
        )
        raise UsageError(f"no record at offset {offset} in {self.topic} ({held})")

    def redrives_of(self, record: DLQRecord) -> Sequence[Redrive]:
        return self.redrives.get(record.offset, ())


def parse_record(
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
) -> DLQRecord:
    pairs = tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers or ())

    def text(name: str) -> str | None:
        return dead_letter_header(pairs, name)

    return DLQRecord(
        offset=offset,
        timestamp_ms=timestamp_ms,
        key=key,
        value=value or b"",
        headers=pairs,
        error=text("error"),
        error_class=text("error-class"),
        source_topic=text("source-topic"),
        source_partition=_natural(text("source-partition")),
        source_offset=_natural(text("source-offset")),
        source_timestamp_ms=_natural(text("source-timestamp")),
        failed_at=_moment(text("failed-at")),
        previous_error=text("previous-error"),
    )


def parse_redrive(key: bytes | None, value: bytes | None) -> Redrive | None:
    """A ledger record, or None when it is not one we wrote (it is then ignored)."""
    try:
        data = json.loads(value or b"")
        redrive = Redrive(
            dlq_topic=str(data["dlq_topic"]),
            dlq_offset=int(data["dlq_offset"]),
            redriven_at=datetime.fromisoformat(data["redriven_at"]),
            target_topic=str(data["target_topic"]),
            target_partition=int(data["target_partition"]),
            target_offset=int(data["target_offset"]),
            error=data.get("error"),
            error_class=data.get("error_class"),
        )
    except (ValueError, TypeError, KeyError):
        return None
    # The key is the DLQ offset; a value that disagrees with it is not trustworthy.
    if key is not None and key != str(redrive.dlq_offset).encode():
        return None
    return redrive


def history(redrives: Iterable[Redrive], dlq_topic: str) -> dict[int, list[Redrive]]:
    """Re-drives of `dlq_topic`'s records by DLQ offset, oldest first."""
    by_offset: dict[int, list[Redrive]] = {}
    for redrive in redrives:
        if redrive.dlq_topic == dlq_topic:
            by_offset.setdefault(redrive.dlq_offset, []).append(redrive)
    return by_offset


def matches(record: DLQRecord, reason: str | None, error_class: str | None) -> bool:
    """`reason` is a case-insensitive substring of the error; `error_class` is exact, and
    "unknown" selects records without a class."""
    if reason is not None and reason.lower() not in (record.error or "").lower():
        return False
    return error_class is None or (record.error_class or UNKNOWN) == error_class


def target_partition(record: DLQRecord, partition_count: int) -> int | None:
    """The source partition, which keeps a facility's events where its producer put them;
    None (the key decides, as for any producer) when it is unknown or no longer exists."""
    partition = record.source_partition
    return partition if partition is not None and partition < partition_count else None


def counts(records: Sequence[DLQRecord]) -> tuple[Counter[str], Counter[str]]:
    """How many records there are per error class and per reason."""
    by_class = Counter(record.error_class or UNKNOWN for record in records)
    return by_class, Counter(record.error or UNKNOWN for record in records)


def when(moment: datetime | None, seconds: bool = True) -> str:
    if moment is None:
        return UNKNOWN
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def redriven_label(redrives: Sequence[Redrive]) -> str:
    if not redrives:
        return "no"
    times = f" ({len(redrives)}x)" if len(redrives) > 1 else ""
    return f"yes {when(redrives[-1].redriven_at, seconds=False)}{times}"


def list_rows(
    records: Sequence[DLQRecord], redrives: Sequence[Sequence[Redrive]], width: int
) -> list[tuple[str, ...]]:
    """The cells of `dlq list`'s table, with reasons shortened so that rows fit `width`;
    `redrives[i]` are the re-drives of `records[i]`'s source event."""
    fixed = [
        (
            str(record.offset),
            when(record.failed_at, seconds=False),
            record.source_label,
            record.error_class or UNKNOWN,
            redriven_label(done),
        )
        for record, done in zip(records, redrives, strict=True)
    ]
    used = sum(
        max(len(name), *(len(row[column]) for row in fixed)) + TABLE_GAP
        for column, name in enumerate(LIST_COLUMNS[:-1])
    )
    room = max(width - used - 2, MIN_REASON)  # 2: the table's edges
    return [
        (*row, shorten(r.error or UNKNOWN, room)) for row, r in zip(fixed, records, strict=True)
    ]


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_payload(record: DLQRecord, kinds: Mapping[str, EventKind]) -> Payload:
    """JSON pretty-printed, Avro single-object decoded (not validated), else a hex dump."""
    value = record.value
    raw_type = find_header(record.headers, "content-type")
    content_type = raw_type.decode("latin-1") if raw_type is not None else None
    if is_json(content_type) or value.lstrip()[:1] == b"{":
        try:
            data = json.loads(value)
        except (ValueError, RecursionError) as exc:
            return hex_payload(value, f"not JSON ({type(exc).__name__})")
        return Payload("json", json.dumps(data, indent=2, sort_keys=True), data)
    if value.startswith(MARKER):
        kind = kinds.get(record.source_topic or "")
        candidates = [kind] if kind is not None else list(EventKind)
        problem = "no known event kind"
        for candidate in candidates:
            try:
                decoded = decode(value, candidate, None)
            except DecodeError as exc:
                problem = str(exc)
                continue
            # Through JSON and back, so that --json and the text show the same values.
            data = json.loads(json.dumps(decoded.data, default=_json_default))
            return Payload(decoded.schema_version, json.dumps(data, indent=2, sort_keys=True), data)
        return hex_payload(value, problem)
    return hex_payload(value, None)


def hex_payload(value: bytes, problem: str | None) -> Payload:
    lines = []
    for start in range(0, min(len(value), HEX_DUMP_LIMIT), 16):
        chunk = value[start : start + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start:04x}  {chunk.hex(' '):<47}  {printable}")
    if len(value) > HEX_DUMP_LIMIT:
        lines.append(f"... {len(value) - HEX_DUMP_LIMIT} more bytes")
    return Payload("hex", "\n".join(lines) or "(empty)", None, problem)


def show_bytes(raw: bytes | None) -> str | None:
    """Keys and header values as text when they are printable UTF-8, else as hex."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return text if text.isprintable() else "0x" + raw.hex()


def record_json(
    record: DLQRecord, redrives: Sequence[Redrive], payload: Payload | None = None
) -> dict[str, Any]:
    data = asdict(record)
    del data["value"]
    data.update(
        key=show_bytes(record.key),
        headers=[[name, show_bytes(value)] for name, value in record.headers],
        failed_at=record.failed_at.isoformat() if record.failed_at else None,
        value_base64=base64.b64encode(record.value).decode(),
        redrives=[redrive.to_json() for redrive in redrives],
    )
    if payload is not None:
        data["payload"] = {"form": payload.form, "data": payload.data, "problem": payload.problem}
    return data


def _natural(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _json_default(value: Any) -> str:
    # Avro timestamp-millis decodes to datetime; nothing else in our schemas needs this.
    return value.isoformat() if isinstance(value, datetime) else str(value)
