"""Errors of the event contract.

Both leaf errors mean "this event cannot be applied": the worker dead-letters it with
`reason` in a header. `reason` is one line and names fields, ids and quantities only,
never free text from the payload.
"""

from __future__ import annotations

from collections.abc import Iterable


class SchemaError(Exception):
    """Root of the contract's errors; also raised when the shipped `.avsc` files are unusable."""

    @property
    def reason(self) -> str:
        """One-line description, fit for a dead-letter header."""
        return " ".join(str(self).split())


class DecodeError(SchemaError):
    """The payload bytes are not a readable event of the expected kind."""


class InvalidEvent(SchemaError):
    """The payload decoded, but breaks the contract's rules; `problems` lists each one."""

    def __init__(self, problems: Iterable[str]) -> None:
        # Collapsing whitespace keeps every problem, and so the reason, on one line.
        self.problems: tuple[str, ...] = tuple(" ".join(p.split()) for p in problems)
        super().__init__("; ".join(self.problems))

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[tuple[str, ...]]]:
        # The default would rebuild from the joined message and split it into characters.
        return (type(self), (self.problems,))
