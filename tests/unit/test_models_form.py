"""The models' shape: JSON form, immutability, forward compatibility, error reporting."""

from __future__ import annotations

import json
import pickle

import pytest
from pydantic import ValidationError

from schemas import (
    CountApproved,
    CountLine,
    EventKind,
    InvalidEvent,
    SchemaError,
    VarianceLogged,
    validate_event,
)
from tests.unit.schemas_fixtures.events import (
    NOW,
    count_data,
    golden,
    line_data,
    variance_data,
)


def golden_count() -> CountApproved:
    return validate_event(EventKind.COUNT_APPROVED, golden("count_approved"), now=NOW)


def golden_variance() -> VarianceLogged:
    return validate_event(EventKind.VARIANCE_LOGGED, golden("variance_logged"), now=NOW)


@pytest.mark.parametrize("name", ["count_approved", "variance_logged"])
def test_json_form_is_stable(name: str) -> None:
    event = golden_count() if name == "count_approved" else golden_variance()
    assert event.model_dump(mode="json") == golden(name)


def test_json_form_of_a_variance() -> None:
    event = validate_event(EventKind.VARIANCE_LOGGED, variance_data(), now=NOW)
    dumped = event.model_dump(mode="json")
    assert dumped["occurred_at"] == "2022-06-20T19:30:00.000Z"
    assert dumped["quantity"] == -5
    assert dumped["inventory_item_id"] is None


def test_json_form_validates_back_to_the_same_event() -> None:
    for event in (golden_count(), golden_variance()):
        again = validate_event(event.KIND, json.loads(event.model_dump_json()), now=NOW)
        assert again == event


def test_python_form_keeps_the_datetime() -> None:
    event = golden_count()
    assert event.model_dump()["occurred_at"] == event.occurred_at


def test_models_are_frozen() -> None:
    event = golden_count()
    with pytest.raises(ValidationError):
        event.count_id = "CC2"
    assert isinstance(event.lines, tuple)
    assert hash(event.lines[0]) == hash(golden_count().lines[0])


def test_unknown_fields_are_ignored() -> None:
    data = count_data(lines=[line_data(shelf="A3")], priority="high")
    event = validate_event(EventKind.COUNT_APPROVED, data, now=NOW)
    assert "priority" not in event.model_dump()
    assert "shelf" not in event.lines[0].model_dump()


def test_models_validate_without_a_context() -> None:
    line = CountLine.model_validate(line_data())
    assert line.variance_quantity == -3
    with pytest.raises(ValidationError, match="beyond the limit"):
        CountLine.model_validate(line_data(counted_quantity=10**6))


def test_kind_is_the_topic_suffix() -> None:
    assert CountApproved.KIND == "count-approved"
    assert VarianceLogged.KIND == "variance-logged"
    assert [kind.value for kind in EventKind] == ["count-approved", "variance-logged"]


def test_invalid_event_reason_is_one_line() -> None:
    error = InvalidEvent(["a: first\nproblem", "b:  second"])
    assert error.problems == ("a: first problem", "b: second")
    assert error.reason == "a: first problem; b: second"
    assert str(error) == error.reason
    assert isinstance(error, SchemaError)


def test_invalid_event_survives_pickling() -> None:
    error = InvalidEvent(["a: x", "b: y"])
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert copy.problems == error.problems


def test_reason_does_not_echo_free_text() -> None:
    secret = "card 4111111111111111 " * 50
    with pytest.raises(InvalidEvent) as caught:
        validate_event(
            EventKind.VARIANCE_LOGGED,
            variance_data(comments=secret, quantity=0, reason_description=7),
            now=NOW,
        )
    assert "4111" not in caught.value.reason
    assert caught.value.reason == (
        "quantity: must not be zero; "
        "reason_description: Input should be a valid string (got int); "
        "comments: is 1100 characters; at most 1000 are allowed"
    )


def test_schema_error_reason_collapses_whitespace() -> None:
    assert SchemaError("first\n  second").reason == "first second"
