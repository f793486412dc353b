"""Loading the .avsc files, fingerprints, and lookups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro.schema import to_parsing_canonical_form

from schemas import EventKind, SchemaError, by_fingerprint, latest, versions
from schemas.registry import DEFAULT, load_registry, load_schema_file

_EMPTY = 0xC15D213AA4D7A795  # the Avro specification's CRC-64-AVRO seed and polynomial


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc_table()


def crc64_avro(data: bytes) -> bytes:
    """Reference fingerprint from the specification, independent of fastavro."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def test_reference_fingerprint_matches_the_specification() -> None:
    # The specification's example: "int" has the 64-bit fingerprint 0x7275d51a3f395c8f.
    assert crc64_avro(b'"int"') == (0x7275D51A3F395C8F).to_bytes(8, "little")


def test_shipped_versions() -> None:
    assert [s.label for s in versions(EventKind.COUNT_APPROVED)] == [
        "CountApproved.v1",
        "CountApproved.v2",
    ]
    assert [s.label for s in versions(EventKind.VARIANCE_LOGGED)] == [
        "VarianceLogged.v1",
        "VarianceLogged.v2",
    ]
    assert latest(EventKind.COUNT_APPROVED).label == "CountApproved.v2"
    assert latest(EventKind.VARIANCE_LOGGED).version == 2


@pytest.mark.parametrize("kind", list(EventKind))
def test_fingerprint_is_crc64_of_the_canonical_form_little_endian(kind: EventKind) -> None:
    for schema in versions(kind):
        canonical = to_parsing_canonical_form(json.loads(schema.source))
        assert len(schema.fingerprint) == 8
        assert schema.fingerprint == crc64_avro(canonical.encode())
        assert by_fingerprint(schema.fingerprint) is schema


def test_canonical_form_drops_docs_and_logical_types() -> None:
    # Java's SchemaNormalization writes a logical-type long as plain "long"; the `avro`
    # Python package writes {"type":"long"}, so its fingerprints must not be used.
    canonical = to_parsing_canonical_form(json.loads(latest(EventKind.VARIANCE_LOGGED).source))
    assert '{"name":"occurred_at","type":"long"}' in canonical
    assert "doc" not in canonical
    assert canonical.startswith('{"name":"co.hotwax.inventory.VarianceLogged","type":"record"')


def test_unknown_fingerprint() -> None:
    assert by_fingerprint(bytes(8)) is None
    assert by_fingerprint(b"short") is None


def test_schema_versions_are_frozen_and_hashable() -> None:
    schema = latest(EventKind.COUNT_APPROVED)
    with pytest.raises(AttributeError):
        schema.version = 3  # type: ignore[misc]
    assert {schema: 1}[schema] == 1
    assert "source" not in repr(schema)


def test_default_registry_is_loaded_once() -> None:
    assert versions(EventKind.COUNT_APPROVED) is DEFAULT.versions(EventKind.COUNT_APPROVED)


def write(folder: Path, name: str, schema: object) -> None:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    (folder / name).write_text(text, encoding="utf-8")


def record(name: str, *fields: str, doc: str = "") -> dict[str, object]:
    return {
        "type": "record",
        "name": name,
        "doc": doc,
        "fields": [{"name": field, "type": "string"} for field in fields],
    }


def test_loads_a_folder(tmp_path: Path) -> None:
    write(tmp_path, "variance_logged.v1.avsc", record("VarianceLogged", "a"))
    write(tmp_path, "variance_logged.v2.avsc", record("VarianceLogged", "a", "b"))
    write(tmp_path, "README.md", "not a schema")
    loaded = load_registry(tmp_path)
    assert [s.label for s in loaded.versions(EventKind.VARIANCE_LOGGED)] == [
        "VarianceLogged.v1",
        "VarianceLogged.v2",
    ]
    assert loaded.versions(EventKind.COUNT_APPROVED) == ()
    with pytest.raises(SchemaError, match="no schema for count-approved"):
        loaded.latest(EventKind.COUNT_APPROVED)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("count_approved.avsc", "{}", "named <kind>.v<N>.avsc"),
        ("count_approved.v0.avsc", "{}", "named <kind>.v<N>.avsc"),
        ("widget.v1.avsc", "{}", "'widget' is not an event kind"),
        ("count_approved.v1.avsc", "{not json", "not a valid Avro schema"),
        ("count_approved.v1.avsc", '{"type": "recrd"}', "not a valid Avro schema"),
        ("count_approved.v1.avsc", '"string"', "the top level must be a record"),
        (
            "count_approved.v1.avsc",
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "long", '
            '"default": "x"}]}',
            "must match schema type: long",
        ),
    ],
)
def test_rejects_a_bad_file(name: str, text: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        load_schema_file(name, text)


def test_rejects_a_gap_in_versions(tmp_path: Path) -> None:
    write(tmp_path, "count_approved.v1.avsc", record("CountApproved", "a"))
    write(tmp_path, "count_approved.v3.avsc", record("CountApproved", "a", "b"))
    with pytest.raises(SchemaError, match=r"without gaps: \[1, 3\]"):
        load_registry(tmp_path)


def test_rejects_a_version_that_only_changes_docs(tmp_path: Path) -> None:
    write(tmp_path, "count_approved.v1.avsc", record("CountApproved", "a"))
    write(tmp_path, "count_approved.v2.avsc", record("CountApproved", "a", doc="better words"))
    with pytest.raises(SchemaError, match=r"CountApproved.v2 has the same canonical form"):
        load_registry(tmp_path)
