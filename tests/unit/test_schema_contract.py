"""The .avsc files say what DESIGN section 3 fixes, document it, and match the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from schemas import CountApproved, CountLine, EventKind, SchemaVersion, VarianceLogged, versions

ALL = [schema for kind in EventKind for schema in versions(kind)]
LABELS = [schema.label for schema in ALL]

COUNT_FIELDS = [
    "event_id",
    "occurred_at",
    "facility_id",
    "netsuite_location_id",
    "count_id",
    "approved_by",
    "lines",
]
LINE_FIELDS_V1 = [
    "product_id",
    "netsuite_item_id",
    "counted_quantity",
    "system_quantity",
    "variance_quantity",
    "inventory_item_id",
    "physical_inventory_id",
]
VARIANCE_FIELDS = [
    "event_id",
    "occurred_at",
    "facility_id",
    "netsuite_location_id",
    "product_id",
    "netsuite_item_id",
    "quantity",
    "reason_id",
    "reason_description",
    "comments",
    "logged_by",
    "inventory_item_id",
    "physical_inventory_id",
]
QUANTITIES = {"counted_quantity", "system_quantity", "variance_quantity", "quantity"}
OPTIONAL = {
    "netsuite_location_id",
    "inventory_item_id",
    "physical_inventory_id",
    "reason_description",
    "comments",
    "decision_outcome",
    "logged_by_role",
}


def raw(schema: SchemaVersion) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema.source)
    return loaded


def records(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every record schema nested in `schema`, outermost first."""
    if schema.get("type") == "record":
        yield schema
        for field in schema["fields"]:
            yield from _nested(field["type"])
    else:
        yield from _nested(schema.get("items"))


def _nested(type_: Any) -> Iterator[dict[str, Any]]:
    if isinstance(type_, dict):
        yield from records(type_)
    elif isinstance(type_, list):
        for branch in type_:
            yield from _nested(branch)


def fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema["fields"]}


def line_record(schema: dict[str, Any]) -> dict[str, Any]:
    items: dict[str, Any] = fields(schema)["lines"]["type"]["items"]
    return items


def test_field_names_are_the_fixed_ones() -> None:
    count_v1, count_v2 = (raw(s) for s in versions(EventKind.COUNT_APPROVED))
    assert list(fields(count_v1)) == COUNT_FIELDS
    assert list(fields(count_v2)) == COUNT_FIELDS
    assert list(fields(line_record(count_v1))) == LINE_FIELDS_V1
    assert list(fields(line_record(count_v2))) == [*LINE_FIELDS_V1, "decision_outcome"]
    assert list(fields(raw(versions(EventKind.VARIANCE_LOGGED)[0]))) == VARIANCE_FIELDS


@pytest.mark.parametrize("schema", ALL, ids=LABELS)
def test_names_and_namespace(schema: SchemaVersion) -> None:
    found = [(r["name"], r.get("namespace")) for r in records(raw(schema))]
    ns = "co.hotwax.inventory"
    if schema.kind is EventKind.COUNT_APPROVED:
        assert found == [("CountApproved", ns), ("CountLine", None)]  # inherits the namespace
    else:
        assert found == [("VarianceLogged", ns)]


@pytest.mark.parametrize("schema", ALL, ids=LABELS)
def test_every_record_and_field_is_documented(schema: SchemaVersion) -> None:
    for record in records(raw(schema)):
        assert len(record.get("doc", "")) > 40, record["name"]
        for field in record["fields"]:
            assert len(field.get("doc", "")) > 20, f"{record['name']}.{field['name']}"


@pytest.mark.parametrize("schema", ALL, ids=LABELS)
def test_field_types(schema: SchemaVersion) -> None:
    for record in records(raw(schema)):
        for name, field in fields(record).items():
            if name in OPTIONAL:
                assert field["type"] == ["null", "string"], name
                assert field["default"] is None, name
            elif name in QUANTITIES:
                assert field["type"] == "long", name
            elif name == "occurred_at":
                assert field["type"] == {"type": "long", "logicalType": "timestamp-millis"}
            elif name != "lines":
                assert field["type"] == "string", name  # ids, NetSuite ids included
                assert "default" not in field, name


@pytest.mark.parametrize("schema", ALL, ids=LABELS)
def test_no_enums(schema: SchemaVersion) -> None:
    # Adding an enum symbol breaks old readers; open sets are strings.
    assert '"enum"' not in schema.source


def test_decision_outcome_is_documented_for_both_models() -> None:
    doc = fields(line_record(raw(versions(EventKind.COUNT_APPROVED)[1])))["decision_outcome"]
    assert "APPLIED" in doc["doc"]
    assert "SKIPPED" in doc["doc"]
    assert "INV_COUNT_COMPLETED" in doc["doc"]


@pytest.mark.parametrize(
    ("model", "kind", "nested"),
    [
        (CountApproved, EventKind.COUNT_APPROVED, False),
        (CountLine, EventKind.COUNT_APPROVED, True),
        (VarianceLogged, EventKind.VARIANCE_LOGGED, False),
    ],
)
def test_models_mirror_the_latest_schema(
    model: type[BaseModel], kind: EventKind, nested: bool
) -> None:
    schema = raw(versions(kind)[-1])
    avro_fields = fields(line_record(schema) if nested else schema)
    assert list(model.model_fields) == list(avro_fields)
    for name, info in model.model_fields.items():
        assert info.is_required() == ("default" not in avro_fields[name]), name
