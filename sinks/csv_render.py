"""Render feed rows as the bytes of a NetSuite import-map CSV file.

Pure: no I/O, so the publisher can checksum, stage and verify exactly these bytes.
The layout is fixed by the saved import maps (DESIGN section 4):
UTF-8 without BOM, a header row, CRLF after every record, RFC 4180 minimal quoting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TypeVar

from sinks.feeds import Feed
from sinks.rows import AdjustmentRow, FeedRow, TransferRow

ADJUSTMENT_HEADER = (
    "Reference No",
    "Adjustment Account",
    "Item",
    "Adjust Qty By",
    "Location",
    "Date",
    "Memo",
    "Subsidiary",
    "HC Inventory Adj Id",
)
TRANSFER_HEADER = (
    "External Id",
    "Item",
    "Adjust Qty By",
    "From Location",
    "To Location",
    "Date",
    "Memo",
    "Subsidiary",
)

# NetSuite rejects an import job above this many records; a row is at most one record.
NETSUITE_MAX_ROWS = 25_000
DEFAULT_MAX_ROWS = 10_000

_LINE_END = "\r\n"
_NEEDS_QUOTES = frozenset(',"\r\n')
# Leading characters that make Excel, LibreOffice or Sheets evaluate a cell (OWASP list).
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_MEMO_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\t": " "})

_T = TypeVar("_T")


def neutralise_text(value: str) -> str:
    """Make a free-text cell inert in spreadsheets by prefixing `'` to a formula lead.

    Only for text cells: a quantity such as `-3` must reach NetSuite as a number.
    """
    if value.startswith(_FORMULA_LEADS):
        return "'" + value
    return value


def single_line(memo: str) -> str:
    """Put a memo on one line: each CRLF, CR, LF or TAB becomes one space.

    NetSuite memos are single-line, and a CRLF pair is one break, not two.
    """
    return memo.replace("\r\n", " ").translate(_MEMO_BREAKS)


def render(feed: Feed, rows: Sequence[FeedRow]) -> bytes:
    """The complete CSV file for `rows` of `feed`; header only when `rows` is empty.

    Raises ValueError if a row belongs to the other feed.
    """
    header = ADJUSTMENT_HEADER if feed is Feed.ADJUSTMENT else TRANSFER_HEADER
    records: list[tuple[str, ...]] = [header]
    records.extend(_cells(feed, row) for row in rows)
    return "".join(_record(cells) for cells in records).encode("utf-8")


def chunk_rows(rows: Sequence[_T], max_rows: int = DEFAULT_MAX_ROWS) -> list[list[_T]]:
    """Split `rows`, in order, into files of at most `max_rows` rows each."""
    if not 1 <= max_rows <= NETSUITE_MAX_ROWS:
        raise ValueError(f"max_rows must be between 1 and {NETSUITE_MAX_ROWS}, got {max_rows}")
    return [list(rows[i : i + max_rows]) for i in range(0, len(rows), max_rows)]


def _cells(feed: Feed, row: FeedRow) -> tuple[str, ...]:
    if feed is Feed.ADJUSTMENT and isinstance(row, AdjustmentRow):
        reference = neutralise_text(row.reference_no)
        return (
            reference,
            row.adjustment_account_id,
            row.item_id,
            _quantity(row.quantity),
            row.location_id,
            _date(row.date),
            _memo(row.memo),
            row.subsidiary_id,
            reference,
        )
    if feed is Feed.TRANSFER and isinstance(row, TransferRow):
        return (
            neutralise_text(row.external_id),
            row.item_id,
            _quantity(row.quantity),
            row.from_location_id,
            row.to_location_id,
            _date(row.date),
            _memo(row.memo),
            row.subsidiary_id,
        )
    raise ValueError(f"{type(row).__name__} cannot go in the {feed.value} feed")


def _quantity(quantity: int) -> str:
    # bool is an int subclass and would render as "True"; NetSuite needs digits.
    if type(quantity) is not int:
        raise ValueError(f"quantity must be an int, got {quantity!r}")
    return str(quantity)


def _date(day: date) -> str:
    # Explicit fields: strftime("%Y") does not zero-pad years below 1000 on glibc.
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def _memo(memo: str) -> str:
    return neutralise_text(single_line(memo))


def _field(value: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _record(cells: Sequence[str]) -> str:
    return ",".join(_field(cell) for cell in cells) + _LINE_END
