"""The CI compatibility check passes on the shipped schemas and fails on breaking changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import EventKind, SchemaError, latest, versions
from schemas.compat import check_all, check_backward, main
from schemas.registry import load_registry

V1 = versions(EventKind.COUNT_APPROVED)[0].source


def changed(base: str, edit: Any) -> str:
    schema = json.loads(base)
    edit(schema)
    return json.dumps(schema)


def line_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = schema["fields"][-1]["type"]["items"]["fields"]
    return fields


def test_shipped_schemas_are_backward_compatible() -> None:
    assert check_all() == []
    assert main() == 0


def test_v2_reads_v1() -> None:
    assert check_backward(latest(EventKind.COUNT_APPROVED).source, V1) == []


def test_catches_a_required_field_without_default() -> None:
    def add_required(schema: dict[str, Any]) -> None:
        line_fields(schema).append({"name": "bin_id", "type": "string"})

    problems = check_backward(changed(V1, add_required), V1)
    assert problems == [
        "reader_field_missing_default_value at /fields/6/type/items/fields/7: bin_id"
    ]


def test_catches_a_changed_type() -> None:
    def quantities_as_strings(schema: dict[str, Any]) -> None:
        line_fields(schema)[2]["type"] = "string"

    problems = check_backward(changed(V1, quantities_as_strings), V1)
    assert len(problems) == 1
    assert problems[0].startswith("type_mismatch at /fields/6/type/items/fields/2/type:")
    assert "reader type: string not compatible with writer type: long" in problems[0]


def test_catches_a_renamed_record() -> None:
    def rename(schema: dict[str, Any]) -> None:
        schema["name"] = "CountSubmitted"

    problems = check_backward(changed(V1, rename), V1)
    assert problems == ["name_mismatch at /name: expected: co.hotwax.inventory.CountApproved"]


def test_an_optional_field_with_default_is_compatible() -> None:
    def add_optional(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "note", "type": ["null", "string"], "default": None})

    assert check_backward(changed(V1, add_optional), V1) == []


def test_rejects_a_schema_that_does_not_parse() -> None:
    with pytest.raises(SchemaError, match="the new schema does not parse"):
        check_backward("{", V1)


def write(folder: Path, version: int, schema: str) -> None:
    (folder / f"count_approved.v{version}.avsc").write_text(schema, encoding="utf-8")


def test_check_all_fails_on_a_breaking_version(tmp_path: Path) -> None:
    def add_required(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "store_code", "type": "string"})

    write(tmp_path, 1, V1)
    write(tmp_path, 2, changed(V1, add_required))
    assert check_all(load_registry(tmp_path)) == [
        "CountApproved.v2 cannot read CountApproved.v1: "
        "reader_field_missing_default_value at /fields/7: store_code"
    ]


def test_check_all_compares_every_older_version_with_every_newer(tmp_path: Path) -> None:
    # v3 reads v2 (which carries the field) but not v1 (which lacks it): a check of
    # neighbours alone would pass, yet the decoder resolves v1 data with the v3 reader.
    def add_optional(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "note", "type": ["null", "string"], "default": None})

    def make_required(schema: dict[str, Any]) -> None:
        del schema["fields"][-1]["default"]
        schema["fields"].append({"name": "tag", "type": ["null", "string"], "default": None})

    v2 = changed(V1, add_optional)
    write(tmp_path, 1, V1)
    write(tmp_path, 2, v2)
    write(tmp_path, 3, changed(v2, make_required))
    problems = check_all(load_registry(tmp_path))
    assert len(problems) == 1
    assert problems[0].startswith("CountApproved.v3 cannot read CountApproved.v1:")
