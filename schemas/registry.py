"""The known versions of each event schema, found by kind or by wire fingerprint.

The `.avsc` files in `schemas/avro/` (named `<kind>.v<N>.avsc`, for example
`count_approved.v2.avsc`) are read and parsed once, at import, so a broken contract
stops the process at start rather than on the first message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Final

import fastavro
from fastavro.schema import SchemaParseException, fingerprint, to_parsing_canonical_form

from schemas.exceptions import SchemaError
from schemas.models import EventKind

_FILE_NAME: Final = re.compile(r"(?P<kind>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one event's schema."""

    kind: EventKind
    version: int
    name: str  # record name, such as CountApproved
    fingerprint: bytes  # CRC-64-AVRO of the Parsing Canonical Form, in wire (little-endian) order
    # fastavro's parsed schema; handed to fastavro as is on every call, so never mutate it.
    parsed: dict[str, Any] = field(compare=False, repr=False)
    source: str = field(compare=False, repr=False)  # the .avsc text, for other Avro libraries

    @property
    def label(self) -> str:
        """Such as `CountApproved.v2`: how DLQ reasons, manifests and logs name it."""
        return f"{self.name}.v{self.version}"


class Registry:
    """An immutable set of schema versions, checked for gaps and clashes when built."""

    def __init__(self, schemas: Iterable[SchemaVersion]) -> None:
        by_kind: dict[EventKind, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for schema in sorted(schemas, key=lambda s: (s.kind, s.version)):
            clash = self._by_fingerprint.get(schema.fingerprint)
            if clash is not None:
                # Two versions with one fingerprint would make the writer ambiguous.
                raise SchemaError(
                    f"{schema.label} has the same canonical form as {clash.label}: docs, "
                    "defaults and logical types are not part of it, so it is no new version"
                )
            self._by_fingerprint[schema.fingerprint] = schema
            by_kind.setdefault(schema.kind, []).append(schema)
        for kind, found in by_kind.items():
            numbers = [schema.version for schema in found]
            if numbers != list(range(1, len(numbers) + 1)):
                raise SchemaError(f"versions of {kind} must run 1, 2, 3 without gaps: {numbers}")
        self._by_kind = {kind: tuple(found) for kind, found in by_kind.items()}

    def versions(self, kind: EventKind) -> tuple[SchemaVersion, ...]:
        """Every version of `kind`, oldest first."""
        return self._by_kind.get(kind, ())

    def latest(self, kind: EventKind) -> SchemaVersion:
        """The version this process writes, and the reader schema it resolves all others to."""
        found = self.versions(kind)
        if not found:
            raise SchemaError(f"no schema for {kind}")
        return found[-1]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(bytes(fp))


def load_schema_file(file_name: str, text: str) -> SchemaVersion:
    """Parse one `<kind>.v<N>.avsc` file."""
    match = _FILE_NAME.fullmatch(file_name)
    if match is None:
        raise SchemaError(f"{file_name}: schema files are named <kind>.v<N>.avsc")
    try:
        kind = EventKind(match["kind"].replace("_", "-"))
    except ValueError:
        raise SchemaError(f"{file_name}: {match['kind']!r} is not an event kind") from None
    try:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(raw)
        canonical = to_parsing_canonical_form(raw)
    except (ValueError, TypeError, KeyError, SchemaParseException) as exc:
        raise SchemaError(f"{file_name}: not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"{file_name}: the top level must be a record")
    return SchemaVersion(
        kind=kind,
        version=int(match["version"]),
        name=str(parsed["name"]).rpartition(".")[2],
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        parsed=parsed,
        source=text,
    )


def load_registry(folder: Traversable) -> Registry:
    """Every `.avsc` file directly in `folder`."""
    return Registry(
        load_schema_file(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".avsc")
    )


DEFAULT: Final = load_registry(files("schemas").joinpath("avro"))


def versions(kind: EventKind) -> tuple[SchemaVersion, ...]:
    """Every shipped version of `kind`, oldest first."""
    return DEFAULT.versions(kind)


def latest(kind: EventKind) -> SchemaVersion:
    """The newest shipped version of `kind`."""
    return DEFAULT.latest(kind)


def by_fingerprint(fp: bytes) -> SchemaVersion | None:
    """The shipped version with this 8-byte wire fingerprint, if any."""
    return DEFAULT.by_fingerprint(fp)
