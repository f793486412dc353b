"""Field types shared by the event models, and the limits their validators read.

Every check lives on a field (not on a model) so that pydantic reports all violations of
an event at once, each under its own path. Limits and the clock come from pydantic's
validation context, set by `schemas.models.validate_event`, so that tests and the worker
can pass their own without any global state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    StrictInt,
    StrictStr,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
NETSUITE_ID_PATTERN: Final = re.compile(r"[0-9]{1,18}")
MAX_ID_LENGTH: Final = 128
MAX_TEXT_LENGTH: Final = 1000
_ID_PUNCTUATION: Final = frozenset("._:@-")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")

LIMITS_KEY: Final = "limits"
NOW_KEY: Final = "now"


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Bounds that make an event absurd rather than merely unusual."""

    max_abs_quantity: int = 100_000
    # How far past "now" `occurred_at` may be; None: not checked (no reference time).
    max_future: timedelta | None = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.max_abs_quantity <= 0:
            raise ValueError("max_abs_quantity must be positive")
        if self.max_future is not None and self.max_future < timedelta(0):
            raise ValueError("max_future must not be negative")


def _limits(info: ValidationInfo) -> ValidationLimits:
    context = info.context or {}
    limits = context.get(LIMITS_KEY)
    return limits if isinstance(limits, ValidationLimits) else ValidationLimits()


def _now(info: ValidationInfo) -> datetime:
    context = info.context or {}
    now = context.get(NOW_KEY)
    return now if isinstance(now, datetime) else datetime.now(UTC)


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _check_id(value: str) -> str:
    if ID_PATTERN.fullmatch(value):
        return value
    # Name the first offending character (repr keeps the message on one line) rather than
    # echo the whole value, which may be anything a publisher put in the wrong field.
    if not value:
        raise _problem("id_empty", "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise _problem("id_too_long", f"is {len(value)} characters; at most 128 are allowed")
    if not (value[0].isascii() and value[0].isalnum()):
        raise _problem("id_start", f"must start with an ASCII letter or digit, not {value[0]!r}")
    bad = next(
        ch for ch in value if not (ch.isascii() and ch.isalnum()) and ch not in _ID_PUNCTUATION
    )
    raise _problem(
        "id_character", f"contains {bad!r}; only ASCII letters, digits and . _ : @ - are allowed"
    )


def _check_count_id(value: str) -> str:
    if "-" in value:
        raise _problem(
            "count_id_dash",
            "must not contain '-': NetSuite's acknowledgement script splits the Reference No "
            "on '-' and reads the first part as the count id",
        )
    return value


def _check_netsuite_id(value: str) -> str:
    if not NETSUITE_ID_PATTERN.fullmatch(value):
        raise _problem("netsuite_id", "must be a NetSuite internal id: 1 to 18 digits")
    return value


def _check_text(value: str) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise _problem("text_too_long", f"is {len(value)} characters; at most 1000 are allowed")
    # JSON can carry lone surrogates ("\ud800"); UTF-8 cannot, so Avro encoding would fail later.
    if _LONE_SURROGATE.search(value):
        raise _problem("text_surrogate", "contains a lone surrogate, which UTF-8 cannot encode")
    return value


def _check_magnitude(value: int, info: ValidationInfo) -> int:
    bound = _limits(info).max_abs_quantity
    if abs(value) > bound:
        raise _problem("quantity_bound", f"{value} is beyond the limit of +/-{bound}")
    return value


def _check_nonzero(value: int) -> int:
    if value == 0:
        raise _problem("quantity_zero", "must not be zero")
    return value


def _parse_moment(value: Any) -> datetime:
    example = "an ISO-8601 date-time with a UTC offset, such as 2024-02-29T15:04:05.123Z"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _problem("moment_format", f"is not {example}") from None
    # Numbers are refused on purpose: seconds and milliseconds since the epoch are easy to
    # confuse, and the contract's JSON form is a string.
    if not isinstance(value, datetime):
        raise _problem("moment_input", f"must be {example}, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise _problem("moment_naive", "has no UTC offset; add one, such as Z or -06:00")
    return value


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _normalize_moment(value: datetime, info: ValidationInfo) -> datetime:
    # The Avro wire carries UTC milliseconds, so JSON and Avro bodies of one event must
    # yield equal models (and equal dumps) for dedupe and rebuilt batches to agree.
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    # A day short of either end: its date in any time zone (NetSuite's) must exist too.
    if moment is None or not _EARLIEST <= moment <= _LATEST:
        raise _problem("moment_range", "is outside the dates a calendar can hold")
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    ahead = _limits(info).max_future
    if ahead is None:
        return moment
    now = _now(info)
    if moment > now + ahead:
        raise _problem(
            "moment_future", f"is {moment - now} after now; at most {ahead} ahead is allowed"
        )
    return moment


def _dump_moment(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


Id = Annotated[StrictStr, AfterValidator(_check_id)]
CountId = Annotated[StrictStr, AfterValidator(_check_id), AfterValidator(_check_count_id)]
NetSuiteId = Annotated[StrictStr, AfterValidator(_check_netsuite_id)]
FreeText = Annotated[StrictStr, AfterValidator(_check_text)]
Quantity = Annotated[StrictInt, AfterValidator(_check_magnitude)]
Delta = Annotated[StrictInt, AfterValidator(_check_magnitude), AfterValidator(_check_nonzero)]
Moment = Annotated[
    datetime,
    BeforeValidator(_parse_moment),
    AfterValidator(_normalize_moment),
    PlainSerializer(_dump_moment, when_used="json"),
]
