"""Each validation rule of the contract: one failing case and its boundary each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest

from schemas import (
    CountApproved,
    EventKind,
    InvalidEvent,
    ValidationLimits,
    VarianceLogged,
    validate_event,
)
from tests.unit.schemas_fixtures.events import NOW, count_data, line_data, variance_data

COUNT: Final = EventKind.COUNT_APPROVED
VARIANCE: Final = EventKind.VARIANCE_LOGGED


def problems(kind: EventKind, data: Mapping[str, object], **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidEvent) as caught:
        validate_event(kind, data, now=NOW, **kwargs)
    return caught.value.problems


def count_with_line(**overrides: Any) -> dict[str, Any]:
    return count_data(lines=[line_data(**overrides)])


def place(kind: EventKind, field: str, value: object) -> tuple[dict[str, Any], str]:
    """Event data with `field` (a top-level name, or `line.<name>`) set, and its error path."""
    if field.startswith("line."):
        name = field.removeprefix("line.")
        return count_with_line(**{name: value}), f"lines[0].{name}"
    base = count_data() if kind is COUNT else variance_data()
    return base | {field: value}, field


ID_FIELDS = [
    (COUNT, "event_id"),
    (COUNT, "facility_id"),
    (COUNT, "count_id"),
    (COUNT, "approved_by"),
    (COUNT, "line.product_id"),
    (COUNT, "line.inventory_item_id"),
    (COUNT, "line.physical_inventory_id"),
    (VARIANCE, "event_id"),
    (VARIANCE, "facility_id"),
    (VARIANCE, "product_id"),
    (VARIANCE, "reason_id"),
    (VARIANCE, "logged_by"),
    (VARIANCE, "inventory_item_id"),
    (VARIANCE, "physical_inventory_id"),
]


@pytest.mark.parametrize(("kind", "field"), ID_FIELDS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("A" * 129, "is 129 characters; at most 128 are allowed"),
        ("=HYPERLINK(1)", "must start with an ASCII letter or digit, not '='"),
        ("+1", "must start with an ASCII letter or digit, not '+'"),
        ("_x", "must start with an ASCII letter or digit, not '_'"),
        ("a b", "contains ' '"),
        ("a,b", "contains ','"),
        ('a"b', "contains '\"'"),
        ("a/b", "contains '/'"),
        ("a\nb", "contains '\\n'"),
        ("caf\u00e9", "contains '\u00e9'"),
        ("\u0661", "must start with an ASCII letter or digit"),
        (42, "Input should be a valid string (got int)"),
    ],
)
def test_id_is_rejected(kind: EventKind, field: str, value: object, message: str) -> None:
    data, path = place(kind, field, value)
    found = problems(kind, data)
    assert len(found) == 1
    assert found[0].startswith(f"{path}: {message}")


@pytest.mark.parametrize(("kind", "field"), ID_FIELDS)
@pytest.mark.parametrize("value", ["A" * 128, "7", "a._:@-Z9", "user@example.com"])
def test_id_boundary_is_accepted(kind: EventKind, field: str, value: str) -> None:
    if field == "count_id" and "-" in value:
        value = value.replace("-", "_")
    data, _ = place(kind, field, value)
    validate_event(kind, data, now=NOW)


@pytest.mark.parametrize(
    ("kind", "field"),
    [(k, f) for k, f in ID_FIELDS if not f.endswith(("inventory_item_id", "_inventory_id"))],
)
def test_required_id_is_missing(kind: EventKind, field: str) -> None:
    data, path = place(kind, field, None)
    assert problems(kind, data) == (f"{path}: Input should be a valid string (got NoneType)",)
    name = path.rpartition(".")[2]
    if field.startswith("line."):
        data["lines"][0].pop(name)
    else:
        data.pop(name)
    assert problems(kind, data) == (f"{path}: Field required",)


def test_count_id_must_not_contain_a_dash() -> None:
    found = problems(COUNT, count_data(count_id="CC-1001"))
    assert found == (
        "count_id: must not contain '-': NetSuite's acknowledgement script splits the "
        "Reference No on '-' and reads the first part as the count id",
    )
    assert validate_event(COUNT, count_data(count_id="CC_1001.a"), now=NOW).count_id == "CC_1001.a"


NETSUITE_FIELDS = [
    (COUNT, "netsuite_location_id"),
    (COUNT, "line.netsuite_item_id"),
    (VARIANCE, "netsuite_location_id"),
    (VARIANCE, "netsuite_item_id"),
]


@pytest.mark.parametrize(("kind", "field"), NETSUITE_FIELDS)
@pytest.mark.parametrize("value", ["", "1" * 19, "12a", "-1", " 1", "1\n", "\u0661", "SKU-1"])
def test_netsuite_id_is_rejected(kind: EventKind, field: str, value: str) -> None:
    data, path = place(kind, field, value)
    assert problems(kind, data) == (f"{path}: must be a NetSuite internal id: 1 to 18 digits",)


@pytest.mark.parametrize(("kind", "field"), NETSUITE_FIELDS)
@pytest.mark.parametrize("value", ["0", "9" * 18])
def test_netsuite_id_boundary_is_accepted(kind: EventKind, field: str, value: str) -> None:
    data, _ = place(kind, field, value)
    validate_event(kind, data, now=NOW)


@pytest.mark.parametrize(("kind", "field"), NETSUITE_FIELDS)
def test_netsuite_id_must_be_a_string(kind: EventKind, field: str) -> None:
    data, path = place(kind, field, 3410)
    assert problems(kind, data) == (f"{path}: Input should be a valid string (got int)",)


@pytest.mark.parametrize("kind", [COUNT, VARIANCE])
def test_netsuite_location_id_is_optional(kind: EventKind) -> None:
    data, _ = place(kind, "netsuite_location_id", None)
    assert validate_event(kind, data, now=NOW).netsuite_location_id is None
    data.pop("netsuite_location_id")
    assert validate_event(kind, data, now=NOW).netsuite_location_id is None


QUANTITY_FIELDS = [
    (COUNT, "line.counted_quantity"),
    (COUNT, "line.system_quantity"),
    (COUNT, "line.variance_quantity"),
    (VARIANCE, "quantity"),
]


@pytest.mark.parametrize(("kind", "field"), QUANTITY_FIELDS)
@pytest.mark.parametrize(
    ("value", "got"), [(3.0, "float"), ("3", "str"), (True, "bool"), (None, "NoneType")]
)
def test_quantity_must_be_a_strict_integer(
    kind: EventKind, field: str, value: object, got: str
) -> None:
    data, path = place(kind, field, value)
    assert f"{path}: Input should be a valid integer (got {got})" in problems(kind, data)


def test_variance_must_be_counted_minus_system() -> None:
    found = problems(COUNT, count_with_line(variance_quantity=3))
    assert found == (
        "lines[0].variance_quantity: 3 is not counted_quantity - system_quantity (7 - 10 = -3)",
    )


def test_zero_variance_line_is_valid() -> None:
    event = validate_event(
        COUNT,
        count_with_line(counted_quantity=4, system_quantity=4, variance_quantity=0),
        now=NOW,
    )
    assert event.lines[0].variance_quantity == 0


def test_negative_system_quantity_is_valid() -> None:
    data = count_with_line(counted_quantity=0, system_quantity=-2, variance_quantity=2)
    assert validate_event(COUNT, data, now=NOW).lines[0].system_quantity == -2


def test_variance_is_not_checked_against_an_invalid_operand() -> None:
    found = problems(COUNT, count_with_line(counted_quantity="7", variance_quantity=99))
    assert found == ("lines[0].counted_quantity: Input should be a valid integer (got str)",)


def test_every_quantity_is_bounded() -> None:
    beyond = count_with_line(
        counted_quantity=100_001, system_quantity=-100_001, variance_quantity=200_002
    )
    assert problems(COUNT, beyond) == (
        "lines[0].counted_quantity: 100001 is beyond the limit of +/-100000",
        "lines[0].system_quantity: -100001 is beyond the limit of +/-100000",
        "lines[0].variance_quantity: 200002 is beyond the limit of +/-100000",
    )
    assert problems(VARIANCE, variance_data(quantity=-100_001)) == (
        "quantity: -100001 is beyond the limit of +/-100000",
    )


def test_quantity_at_the_bound_is_valid() -> None:
    data = count_with_line(counted_quantity=100_000, system_quantity=0, variance_quantity=100_000)
    validate_event(COUNT, data, now=NOW)
    data = count_with_line(counted_quantity=0, system_quantity=100_000, variance_quantity=-100_000)
    validate_event(COUNT, data, now=NOW)
    validate_event(VARIANCE, variance_data(quantity=-100_000), now=NOW)


def test_limits_come_from_the_caller() -> None:
    tight = ValidationLimits(max_abs_quantity=5)
    assert problems(VARIANCE, variance_data(quantity=6), limits=tight) == (
        "quantity: 6 is beyond the limit of +/-5",
    )
    validate_event(VARIANCE, variance_data(quantity=6), ValidationLimits(6), NOW)


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        ValidationLimits(max_abs_quantity=0)
    with pytest.raises(ValueError, match="negative"):
        ValidationLimits(max_future=timedelta(seconds=-1))


def test_logged_variance_must_not_be_zero() -> None:
    assert problems(VARIANCE, variance_data(quantity=0)) == ("quantity: must not be zero",)
    assert validate_event(VARIANCE, variance_data(quantity=1), now=NOW).quantity == 1
    assert validate_event(VARIANCE, variance_data(quantity=-1), now=NOW).quantity == -1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-02-29T15:04:05", "has no UTC offset; add one, such as Z or -06:00"),
        ("2024-02-29", "has no UTC offset; add one, such as Z or -06:00"),
        ("yesterday", "is not an ISO-8601 date-time with a UTC offset"),
        ("1709219045", "is not an ISO-8601 date-time with a UTC offset"),
        (1709219045123, "must be an ISO-8601 date-time with a UTC offset"),
        (None, "must be an ISO-8601 date-time with a UTC offset"),
        (datetime(2024, 2, 29, 15, 4), "has no UTC offset"),
    ],
)
@pytest.mark.parametrize("kind", [COUNT, VARIANCE])
def test_occurred_at_is_rejected(kind: EventKind, value: object, message: str) -> None:
    data, _ = place(kind, "occurred_at", value)
    found = problems(kind, data)
    assert len(found) == 1
    assert found[0].startswith(f"occurred_at: {message}")


@pytest.mark.parametrize("kind", [COUNT, VARIANCE])
def test_occurred_at_may_not_be_far_in_the_future(kind: EventKind) -> None:
    edge = NOW + timedelta(minutes=10)
    data, _ = place(kind, "occurred_at", edge.isoformat())
    assert validate_event(kind, data, now=NOW).occurred_at == edge
    data, _ = place(kind, "occurred_at", (edge + timedelta(milliseconds=1)).isoformat())
    assert problems(kind, data) == (
        "occurred_at: is 0:10:00.001000 after now; at most 0:10:00 ahead is allowed",
    )


def test_future_allowance_comes_from_the_caller() -> None:
    data = variance_data(occurred_at=(NOW + timedelta(seconds=1)).isoformat())
    found = problems(VARIANCE, data, limits=ValidationLimits(max_future=timedelta(0)))
    assert found == ("occurred_at: is 0:00:01 after now; at most 0:00:00 ahead is allowed",)


def test_occurred_at_is_normalized_to_utc_milliseconds() -> None:
    data = variance_data(occurred_at="2024-02-29T09:04:05.123999-06:00")
    moment = validate_event(VARIANCE, data, now=NOW).occurred_at
    assert moment == datetime(2024, 2, 29, 15, 4, 5, 123000, tzinfo=UTC)
    assert moment.tzinfo is UTC


def test_occurred_at_accepts_an_aware_datetime() -> None:
    moment = datetime(2024, 2, 29, 15, 4, 5, tzinfo=UTC)
    assert (
        validate_event(VARIANCE, variance_data(occurred_at=moment), now=NOW).occurred_at == moment
    )


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_event(VARIANCE, variance_data(), now=datetime(2024, 2, 29))


def test_now_defaults_to_the_wall_clock() -> None:
    late = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(InvalidEvent, match="occurred_at"):
        validate_event(VARIANCE, variance_data(occurred_at=late.isoformat()))


def test_count_needs_a_line() -> None:
    assert problems(COUNT, count_data(lines=[])) == ("lines: a count needs at least one line",)
    assert problems(COUNT, count_data(lines=None)) == (
        "lines: Input should be a valid tuple (got NoneType)",
    )


def test_products_are_distinct_within_a_count() -> None:
    first = line_data()
    other = line_data(product_id="10018")
    found = problems(COUNT, count_data(lines=[first, other, first]))
    assert found == ("lines[2].product_id: '10017' repeats lines[0].product_id",)
    assert len(validate_event(COUNT, count_data(lines=[first, other]), now=NOW).lines) == 2


def test_duplicates_are_reported_with_the_lines_own_errors() -> None:
    broken = line_data(variance_quantity=0)
    found = problems(COUNT, count_data(lines=[line_data(), broken]))
    assert found == (
        "lines[1].variance_quantity: 0 is not counted_quantity - system_quantity (7 - 10 = -3)",
        "lines[1].product_id: '10017' repeats lines[0].product_id",
    )


@pytest.mark.parametrize("value", [None, "APPLIED", "SKIPPED"])
def test_decision_outcome_is_accepted(value: str | None) -> None:
    event = validate_event(COUNT, count_with_line(decision_outcome=value), now=NOW)
    assert event.lines[0].decision_outcome == value


@pytest.mark.parametrize("value", ["applied", "", "REJECTED", 1])
def test_decision_outcome_is_rejected(value: object) -> None:
    found = problems(COUNT, count_with_line(decision_outcome=value))
    assert found == ("lines[0].decision_outcome: Input should be 'APPLIED' or 'SKIPPED'",)


@pytest.mark.parametrize("field", ["reason_description", "comments"])
def test_free_text_is_bounded(field: str) -> None:
    validate_event(VARIANCE, variance_data(**{field: "x" * 1000}), now=NOW)
    found = problems(VARIANCE, variance_data(**{field: "SECRET" + "x" * 995}))
    assert found == (f"{field}: is 1001 characters; at most 1000 are allowed",)


@pytest.mark.parametrize("field", ["reason_description", "comments"])
@pytest.mark.parametrize(
    "value", ["", "Caja aplastada \u2014 \u6e7f\u6c14 \U0001f4e6", 'line 1\nline 2, "quoted"', None]
)
def test_free_text_may_be_any_unicode(field: str, value: str | None) -> None:
    event = validate_event(VARIANCE, variance_data(**{field: value}), now=NOW)
    assert getattr(event, field) == value


def test_free_text_must_be_encodable() -> None:
    found = problems(VARIANCE, variance_data(comments="broken \ud800 pair"))
    assert found == ("comments: contains a lone surrogate, which UTF-8 cannot encode",)


def test_every_violation_is_listed() -> None:
    data = count_data(
        event_id="",
        occurred_at="2024-02-29T15:04:05",
        facility_id="a,b",
        netsuite_location_id="x",
        count_id="CC-1",
        approved_by=None,
        lines=[line_data(counted_quantity=1.5), line_data(netsuite_item_id="")],
    )
    found = problems(COUNT, data)
    paths = [problem.partition(":")[0] for problem in found]
    assert paths == [
        "event_id",
        "occurred_at",
        "facility_id",
        "netsuite_location_id",
        "count_id",
        "approved_by",
        "lines[0].counted_quantity",
        "lines[1].netsuite_item_id",
        "lines[1].product_id",
    ]


@pytest.mark.parametrize("data", [[], "event", 7])
def test_non_mapping_data_is_invalid(data: Any) -> None:
    found = problems(VARIANCE, data)
    assert len(found) == 1
    assert found[0].startswith("event: Input should be a valid dictionary")


def test_kind_selects_the_model() -> None:
    assert isinstance(validate_event(COUNT, count_data(), now=NOW), CountApproved)
    assert isinstance(validate_event(VARIANCE, variance_data(), now=NOW), VarianceLogged)
    assert problems(COUNT, variance_data())[0] == "count_id: Field required"
