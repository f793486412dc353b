"""Hypothesis strategies for valid event data (as the JSON form would carry it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas.fields import ID_PATTERN, NETSUITE_ID_PATTERN

from .events import NOW

ids = st.from_regex(ID_PATTERN, fullmatch=True)
count_ids = ids.filter(lambda value: "-" not in value)
netsuite_ids = st.from_regex(NETSUITE_ID_PATTERN, fullmatch=True)
optional_ids = st.none() | ids
texts = st.none() | st.text(max_size=1000)
half_bound = st.integers(min_value=-50_000, max_value=50_000)
deltas = st.integers(min_value=-100_000, max_value=100_000).filter(bool)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=-6)), timezone(timedelta(hours=5, minutes=45))]
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2024, 2, 29, 18, 10), timezones=offsets
).filter(lambda moment: moment <= NOW + timedelta(minutes=10))


@st.composite
def lines(draw: st.DrawFn) -> dict[str, Any]:
    counted, system = draw(half_bound), draw(half_bound)
    return {
        "product_id": draw(ids),
        "netsuite_item_id": draw(netsuite_ids),
        "counted_quantity": counted,
        "system_quantity": system,
        "variance_quantity": counted - system,
        "inventory_item_id": draw(optional_ids),
        "physical_inventory_id": draw(optional_ids),
        "decision_outcome": draw(st.sampled_from([None, "APPLIED", "SKIPPED"])),
    }


@st.composite
def count_approved(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(ids),
        "occurred_at": draw(moments).isoformat(),
        "facility_id": draw(ids),
        "netsuite_location_id": draw(st.none() | netsuite_ids),
        "count_id": draw(count_ids),
        "approved_by": draw(ids),
        "lines": draw(
            st.lists(lines(), min_size=1, max_size=20, unique_by=lambda line: line["product_id"])
        ),
    }


@st.composite
def variance_logged(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(ids),
        "occurred_at": draw(moments).isoformat(),
        "facility_id": draw(ids),
        "netsuite_location_id": draw(st.none() | netsuite_ids),
        "product_id": draw(ids),
        "netsuite_item_id": draw(netsuite_ids),
        "quantity": draw(deltas),
        "reason_id": draw(ids),
        "reason_description": draw(texts),
        "comments": draw(texts),
        "logged_by": draw(ids),
        "inventory_item_id": draw(optional_ids),
        "physical_inventory_id": draw(optional_ids),
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
