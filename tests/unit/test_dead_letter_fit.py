"""Dead letters fit the DLQ: whole when they can, else cut, with the original's size and
sha256 in their headers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from streams.core.dead_letter import (
    ORIGINAL_SHA256,
    TRUNCATED_FROM,
    DeadLetter,
    ErrorClass,
    SourceRecord,
    fitted,
)

AT = datetime(2024, 2, 29, 18, tzinfo=UTC)


def letter(value: bytes) -> DeadLetter:
    record = SourceRecord("variances", 1, 7, 1, b"STORE_1", value, (("trace", b"t"),))
    return DeadLetter(record, ErrorClass.INVALID, "too large")


def test_a_letter_that_fits_is_written_whole() -> None:
    fit = fitted(letter(b"x" * 100), 10_000, AT)
    assert fit.value == b"x" * 100
    assert TRUNCATED_FROM not in dict(fit.headers)


@given(size=st.integers(min_value=0, max_value=200_000), limit=st.integers(2_000, 100_000))
def test_a_letter_never_exceeds_the_limit_and_says_what_was_cut(size: int, limit: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"y" * (size % 256)
    fit = fitted(letter(value), limit, AT)
    assert fit.size <= limit
    assert value.startswith(fit.value)
    headers = dict(fit.headers)
    if fit.value != value:
        assert headers[TRUNCATED_FROM] == str(len(value)).encode()
        assert headers[ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers["trace"] == b"t"  # the original headers stay
