"""The two inventory events as frozen pydantic models, and `validate_event`.

The models mirror the latest Avro schemas field for field (a unit test holds them to it).
They ignore unknown fields, so a newer producer's optional additions do not break this
reader, and `model_dump(mode="json")` is the JSON form that JSON publishers send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Literal, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from schemas.exceptions import InvalidEvent
from schemas.fields import (
    ID_PATTERN,
    LIMITS_KEY,
    NOW_KEY,
    CountId,
    Delta,
    FreeText,
    Id,
    Moment,
    NetSuiteId,
    Quantity,
    ValidationLimits,
)

__all__ = [
    "CountApproved",
    "CountLine",
    "DecisionOutcome",
    "Event",
    "EventKind",
    "ValidationLimits",
    "VarianceLogged",
    "validate_event",
]


class EventKind(StrEnum):
    """Which event a payload carries. The value is the topic suffix (`hotwax.inventory.<value>`)."""

    COUNT_APPROVED = "count-approved"
    VARIANCE_LOGGED = "variance-logged"


DecisionOutcome = Literal["APPLIED", "SKIPPED"]

# hide_input_in_errors: payloads may carry free text that must not reach logs via str(exc).
_CONFIG = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)


class CountLine(BaseModel):
    """One approved line of a cycle count: what was counted against what the system held."""

    model_config = _CONFIG

    product_id: Id
    netsuite_item_id: NetSuiteId
    counted_quantity: Quantity
    system_quantity: Quantity
    variance_quantity: Quantity
    inventory_item_id: Id | None = None
    physical_inventory_id: Id | None = None
    decision_outcome: DecisionOutcome | None = None

    @field_validator("variance_quantity")
    @classmethod
    def _is_the_difference(cls, value: int, info: ValidationInfo) -> int:
        counted = info.data.get("counted_quantity")
        system = info.data.get("system_quantity")
        if counted is None or system is None:
            return value  # the operand's own error is already reported
        if value != counted - system:
            raise PydanticCustomError(
                "variance_mismatch",
                f"{value} is not counted_quantity - system_quantity "
                f"({counted} - {system} = {counted - system})",
            )
        return value


class CountApproved(BaseModel):
    """A reviewed cycle count at one facility; its lines are the approved ones."""

    model_config = _CONFIG
    KIND: ClassVar[EventKind] = EventKind.COUNT_APPROVED

    event_id: Id
    occurred_at: Moment
    facility_id: Id
    netsuite_location_id: NetSuiteId | None = None
    count_id: CountId
    approved_by: Id
    lines: tuple[CountLine, ...]

    @field_validator("lines", mode="wrap")
    @classmethod
    def _distinct_products(
        cls, value: object, handler: ValidatorFunctionWrapHandler
    ) -> tuple[CountLine, ...]:
        # Duplicates are found on the raw lines so they are reported alongside any line's
        # own errors, not only once every line is otherwise valid.
        duplicates = _duplicate_products(value)
        try:
            lines: tuple[CountLine, ...] = handler(value)
        except ValidationError as exc:
            if not duplicates:
                raise
            raise _with_extra(exc, duplicates) from None
        if not lines:
            raise PydanticCustomError("count_empty", "a count needs at least one line")
        if duplicates:
            raise ValidationError.from_exception_data("lines", duplicates)
        return lines


class VarianceLogged(BaseModel):
    """A signed change to one product's stock at one facility, with a reason, without a count."""

    model_config = _CONFIG
    KIND: ClassVar[EventKind] = EventKind.VARIANCE_LOGGED

    event_id: Id
    occurred_at: Moment
    facility_id: Id
    netsuite_location_id: NetSuiteId | None = None
    product_id: Id
    netsuite_item_id: NetSuiteId
    quantity: Delta
    reason_id: Id
    reason_description: FreeText | None = None
    comments: FreeText | None = None
    logged_by: Id
    logged_by_role: Id | None = None
    inventory_item_id: Id | None = None
    physical_inventory_id: Id | None = None


Event = CountApproved | VarianceLogged

MODELS: Mapping[EventKind, type[CountApproved] | type[VarianceLogged]] = {
    EventKind.COUNT_APPROVED: CountApproved,
    EventKind.VARIANCE_LOGGED: VarianceLogged,
}


@overload
def validate_event(
    kind: Literal[EventKind.COUNT_APPROVED],
    data: Mapping[str, object],
    limits: ValidationLimits = ...,
    now: datetime | None = ...,
) -> CountApproved: ...
@overload
def validate_event(
    kind: Literal[EventKind.VARIANCE_LOGGED],
    data: Mapping[str, object],
    limits: ValidationLimits = ...,
    now: datetime | None = ...,
) -> VarianceLogged: ...
@overload
def validate_event(
    kind: EventKind,
    data: Mapping[str, object],
    limits: ValidationLimits = ...,
    now: datetime | None = ...,
) -> Event: ...
def validate_event(
    kind: EventKind,
    data: Mapping[str, object],
    limits: ValidationLimits = ValidationLimits(),  # noqa: B008 - frozen, so sharing is safe
    now: datetime | None = None,
) -> Event:
    """Validate decoded event data against the contract's rules.

    `now` (timezone-aware; the wall clock when None) bounds how far in the future
    `occurred_at` may be, by `limits.max_future` (None: not at all). Raises `InvalidEvent`
    listing every violation by field path.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    try:
        return MODELS[kind].model_validate(data, context={LIMITS_KEY: limits, NOW_KEY: now})
    except ValidationError as exc:
        raise InvalidEvent([_describe(error) for error in exc.errors()]) from exc


def _duplicate_products(lines: object) -> list[InitErrorDetails]:
    if not isinstance(lines, Sequence) or isinstance(lines, str):
        return []
    first_seen: dict[str, int] = {}
    found: list[InitErrorDetails] = []
    for index, line in enumerate(lines):
        product = line.get("product_id") if isinstance(line, Mapping) else None
        if isinstance(line, CountLine):
            product = line.product_id
        # Malformed ids get their own error; only well-formed ones are safe to echo here.
        if not isinstance(product, str) or not ID_PATTERN.fullmatch(product):
            continue
        if product in first_seen:
            message = f"{product!r} repeats lines[{first_seen[product]}].product_id"
            error = PydanticCustomError("duplicate_product", message)
            found.append(InitErrorDetails(type=error, loc=(index, "product_id"), input=product))
        else:
            first_seen[product] = index
    return found


def _with_extra(exc: ValidationError, extra: list[InitErrorDetails]) -> ValidationError:
    # Errors are rebuilt as custom errors carrying their rendered message, because
    # from_exception_data cannot rebuild our own error types from their names.
    kept = [
        InitErrorDetails(
            type=PydanticCustomError(error["type"], error["msg"]),
            loc=error["loc"],
            input=error["input"],
        )
        for error in exc.errors()
    ]
    return ValidationError.from_exception_data(exc.title, [*kept, *extra])


def _describe(error: ErrorDetails) -> str:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    message = error["msg"]
    if error["type"].endswith("_type"):
        message += f" (got {type(error['input']).__name__})"
    return f"{path or 'event'}: {message}"
