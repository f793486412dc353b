"""Render feed rows as the bytes of a NetSuite import-map CSV file.

Pure: no I/O, so the publisher can checksum, stage and verify exactly these bytes.
The layout is fixed by the saved import maps (DESIGN section 4):
UTF-8 without BOM, a header row, CRLF after every record, RFC 4180 minimal quoting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sinks.feeds.spec import AnyFeed, FeedRow

# NetSuite rejects an import job above this many records; a row is at most one record.
NETSUITE_MAX_ROWS = 25_000
DEFAULT_MAX_ROWS = 10_000

_LINE_END = "\r\n"
_NEEDS_QUOTES = frozenset(',"\r\n')

_T = TypeVar("_T")


def render(feed: AnyFeed, rows: Sequence[FeedRow]) -> bytes:
    """The complete CSV file for `rows` of `feed`; header only when `rows` is empty.

    Raises ValueError if a row is not of the feed's row type.
    """
    records: list[tuple[str, ...]] = [feed.header]
    records.extend(feed.cells_of(row) for row in rows)
    return "".join(_record(cells) for cells in records).encode("utf-8")


def chunk_rows(rows: Sequence[_T], max_rows: int = DEFAULT_MAX_ROWS) -> list[list[_T]]:
    """Split `rows`, in order, into files of at most `max_rows` rows each."""
    if not 1 <= max_rows <= NETSUITE_MAX_ROWS:
        raise ValueError(f"max_rows must be between 1 and {NETSUITE_MAX_ROWS}, got {max_rows}")
    return [list(rows[i : i + max_rows]) for i in range(0, len(rows), max_rows)]


def _field(value: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _record(cells: Sequence[str]) -> str:
    return ",".join(_field(cell) for cell in cells) + _LINE_END
