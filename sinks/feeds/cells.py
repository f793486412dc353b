"""How values are written into NetSuite CSV cells, for every feed alike (DESIGN section 4)."""

from __future__ import annotations

from datetime import date

# Leading characters that make Excel, LibreOffice or Sheets evaluate a cell (OWASP list).
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
# Every control character and Unicode line break: NetSuite memos are single-line text.
_MEMO_BREAKS = str.maketrans(
    dict.fromkeys([*map(chr, range(0x20)), "\x7f", "\x85", "\u2028", "\u2029"], " ")
)


def neutralise_text(value: str) -> str:
    """Make a free-text cell inert in spreadsheets by prefixing `'` to a formula lead.

    Only for text cells: a quantity such as `-3` must reach NetSuite as a number.
    """
    if value.startswith(_FORMULA_LEADS):
        return "'" + value
    return value


def single_line(memo: str) -> str:
    """Put a memo on one line: each CRLF, other line break, TAB or control character
    becomes one space, and the ends are trimmed.

    NetSuite memos are single-line, and a CRLF pair is one break, not two. Trimmed, so
    that a break before a formula ("\\n=HYPERLINK(...)") cannot hide it behind a space.
    """
    return memo.replace("\r\n", " ").translate(_MEMO_BREAKS).strip()


def quantity_cell(quantity: int) -> str:
    # bool is an int subclass and would render as "True"; NetSuite needs digits.
    if type(quantity) is not int:
        raise ValueError(f"quantity must be an int, got {quantity!r}")
    return str(quantity)


def date_cell(day: date) -> str:
    # Explicit fields: strftime("%Y") does not zero-pad years below 1000 on glibc.
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def memo_cell(memo: str) -> str:
    return neutralise_text(single_line(memo))
