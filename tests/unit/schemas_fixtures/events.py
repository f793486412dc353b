"""Valid sample event data, to be varied one field at a time by the tests."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastavro import schemaless_writer

from schemas.codec import MARKER
from schemas.models import Event
from schemas.registry import SchemaVersion

FOLDER = Path(__file__).parent
NOW = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)


def line_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "product_id": "10017",
        "netsuite_item_id": "3410",
        "counted_quantity": 7,
        "system_quantity": 10,
        "variance_quantity": -3,
    }
    return data | overrides


def count_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": "0f8e5a52-3b7c-4a51-9a0c-6f1d2e3c4b5a",
        "occurred_at": "2024-02-29T15:04:05.123Z",
        "facility_id": "STORE_1",
        "netsuite_location_id": "254",
        "count_id": "CC1001",
        "approved_by": "store.manager",
        "lines": [line_data()],
    }
    return data | overrides


def variance_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": "8f2c6d1e-0a4b-4c3d-9e8f-7a6b5c4d3e2f",
        "occurred_at": "2022-06-20T14:30:00.000-05:00",
        "facility_id": "STORE_1",
        "netsuite_location_id": "254",
        "product_id": "10017",
        "netsuite_item_id": "3410",
        "quantity": -5,
        "reason_id": "VAR_DAMAGED",
        "reason_description": "Damaged",
        "comments": "Box crushed in the back room",
        "logged_by": "store.manager",
    }
    return data | overrides


def golden(name: str) -> dict[str, Any]:
    """A stored JSON form, such as `count_approved` for `count_approved.json`."""
    loaded: dict[str, Any] = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def encode_with(schema: SchemaVersion, event: Event) -> bytes:
    """Single-object encoding with a chosen (possibly older) writer version."""
    out = io.BytesIO(MARKER + schema.fingerprint)
    out.seek(0, io.SEEK_END)
    schemaless_writer(out, schema.parsed, event.model_dump())
    return out.getvalue()
