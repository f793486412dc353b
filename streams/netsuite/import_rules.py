"""What NetSuite's import maps accept, as pure functions: no I/O, no clock.

`parse_import_file` reads one CSV file the way the saved import maps would (DESIGN
section 4) and returns the transactions it books, or raises `FileRejected` with every
problem found. NetSuite imports a file whole or not at all in this simulation, so the
whole file is checked before anything is booked. The acknowledgement and error CSVs
that NetSuite's scripts write back are rendered here too.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from sinks.csv_render import ADJUSTMENT_HEADER, NETSUITE_MAX_ROWS, TRANSFER_HEADER
from sinks.feeds import Feed
from sinks.rejections import ERROR_HEADER
from streams.netsuite.ledger import Transaction

# streams.core.routing.variance_reference: logged variances are `VL-<event_id>`; every other
# adjustment row is a count line, `<count_id>-...`, and count ids contain no `-`.
VARIANCE_REFERENCE_PREFIX = "VL-"
ACK_HEADER = ("workEffortId", "externalId")

_ADJUSTMENT_IDS = ("Adjustment Account", "Item", "Location", "Subsidiary")
_TRANSFER_IDS = ("Item", "From Location", "To Location", "Subsidiary")
# ASCII only: str.isdigit() and `\d` would also accept other scripts' digits.
_INTERNAL_ID = re.compile(r"[0-9]{1,18}")
_INTEGER = re.compile(r"-?[0-9]+")
# Keeps every balance far inside SQLite's 64-bit integers, whatever the files hold.
_MAX_QUANTITY_DIGITS = 15
_DATE = re.compile(r"(?P<month>[0-9]{2})/(?P<day>[0-9]{2})/(?P<year>[0-9]{4})")


class FileRejected(Exception):
    """The file breaks the import map; `problems` lists each break, in file order."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        """The first problem, and how many more there are: one line for logs."""
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more)" if more else "")


def header_of(feed: Feed) -> tuple[str, ...]:
    return ADJUSTMENT_HEADER if feed is Feed.ADJUSTMENT else TRANSFER_HEADER


def _nothing_booked(_external_id: str) -> bool:
    return False


def parse_import_file(
    feed: Feed,
    name: str,
    data: bytes,
    transfer_booked: Callable[[str], bool] = _nothing_booked,
) -> list[Transaction]:
    """The transactions that importing `data` (the file `name` of `feed`) books.

    An empty file books nothing, as NetSuite archives it unread. `transfer_booked` says
    whether NetSuite already holds a transfer with that External Id (add mode rejects
    it). Raises `FileRejected` listing every problem.
    """
    if not data:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(
            [f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"]
        ) from None
    header = header_of(feed)
    # Byte for byte: the import map matches columns by these exact names.
    first_line = text.partition("\n")[0].removesuffix("\r")
    if first_line != ",".join(header):
        expected = ",".join(header)
        raise FileRejected(
            [f"line 1: header {first_line!r} is not the {feed.import_map} header {expected!r}"]
        )
    problems: list[str] = []
    transactions: list[Transaction] = []
    first_seen: dict[str, int] = {}
    rows = 0
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        next(reader)
        for cells in reader:
            rows += 1
            line = reader.line_num
            if len(cells) != len(header):
                shape = f"{len(cells)} columns, expected {len(header)}" if cells else "blank line"
                problems.append(f"line {line}: {shape}")
                continue
            fields = dict(zip(header, cells, strict=True))
            row_problems = _check_row(feed, fields)
            if feed is Feed.TRANSFER and not row_problems:
                row_problems = _check_external_id(fields, line, first_seen, transfer_booked)
            problems += [f"line {line}: {problem}" for problem in row_problems]
            if not row_problems:
                transactions.append(_transaction(feed, fields, name))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: malformed CSV: {exc}")
    if rows > NETSUITE_MAX_ROWS:
        problems.append(f"{rows} rows; NetSuite imports at most {NETSUITE_MAX_ROWS} per file")
    if problems:
        raise FileRejected(problems)
    return transactions


def cycle_count_id(reference: str) -> str | None:
    """The OMS count id that a count row's Reference No starts with; None for other rows.

    NetSuite's acknowledgement script splits the Reference No on `-` and takes the first
    part, so a count reference without a `-` cannot be acknowledged.
    """
    if reference.startswith(VARIANCE_REFERENCE_PREFIX):
        return None
    count_id, dash, _ = reference.partition("-")
    return count_id if dash and count_id else None


def render_ack(rows: Sequence[tuple[str, int]]) -> bytes:
    """The cycle-count acknowledgement CSV: (OMS count id, NetSuite transaction id) rows."""
    return _csv([ACK_HEADER, *((count_id, str(tid)) for count_id, tid in rows)])


def render_errors(file_name: str, problems: Sequence[str]) -> bytes:
    """The `error/` CSV NetSuite's script writes for a file it could not import."""
    return _csv([ERROR_HEADER, *((file_name, problem) for problem in problems)])


def _csv(records: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(records)
    return out.getvalue().encode("utf-8")


def _check_row(feed: Feed, fields: Mapping[str, str]) -> list[str]:
    if feed is Feed.ADJUSTMENT:
        problems = _check_ids(fields, _ADJUSTMENT_IDS)
        problems += _check_text(fields, "Reference No")
        if fields["HC Inventory Adj Id"] != fields["Reference No"]:
            problems.append(
                f"HC Inventory Adj Id {fields['HC Inventory Adj Id']!r} is not the "
                f"Reference No {fields['Reference No']!r}"
            )
    else:
        problems = _check_ids(fields, _TRANSFER_IDS)
        problems += _check_text(fields, "External Id")
        if fields["From Location"] == fields["To Location"]:
            problems.append(f"From Location and To Location are both {fields['From Location']!r}")
    problems += _check_quantity(feed, fields["Adjust Qty By"])
    if _parse_date(fields["Date"]) is None:
        problems.append(f"Date {fields['Date']!r} is not a valid MM/DD/YYYY date")
    return problems


def _check_ids(fields: Mapping[str, str], columns: Sequence[str]) -> list[str]:
    return [
        f"{column} {fields[column]!r} is not a NetSuite internal id (digits only)"
        for column in columns
        if _INTERNAL_ID.fullmatch(fields[column]) is None
    ]


def _check_text(fields: Mapping[str, str], column: str) -> list[str]:
    return [] if fields[column] else [f"{column} is empty"]


def _check_quantity(feed: Feed, cell: str) -> list[str]:
    if _INTEGER.fullmatch(cell) is None:
        return [f"Adjust Qty By {cell!r} is not an integer"]
    if len(cell.lstrip("-")) > _MAX_QUANTITY_DIGITS:
        return [f"Adjust Qty By {cell!r} is out of range"]
    quantity = int(cell)
    if feed is Feed.TRANSFER and quantity <= 0:
        return [f"Adjust Qty By {cell!r} must be positive in a transfer"]
    if quantity == 0:
        return ["Adjust Qty By is 0: an adjustment must change the quantity"]
    return []


def _check_external_id(
    fields: Mapping[str, str],
    line: int,
    first_seen: dict[str, int],
    transfer_booked: Callable[[str], bool],
) -> list[str]:
    external_id = fields["External Id"]
    earlier = first_seen.setdefault(external_id, line)
    if earlier != line:
        return [f"External Id {external_id!r} repeats line {earlier}"]
    if transfer_booked(external_id):
        return [f"External Id {external_id!r} already exists in NetSuite"]
    return []


def _parse_date(cell: str) -> date | None:
    match = _DATE.fullmatch(cell)
    if match is None:
        return None
    try:
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None


def _transaction(feed: Feed, fields: Mapping[str, str], name: str) -> Transaction:
    # Only called on rows whose Date is valid MM/DD/YYYY; the books keep ISO dates.
    month, day, year = fields["Date"].split("/")
    iso_date = f"{year}-{month}-{day}"
    if feed is Feed.ADJUSTMENT:
        return Transaction(
            kind="adjustment",
            reference=fields["Reference No"],
            item=fields["Item"],
            location=fields["Location"],
            to_location=None,
            quantity=int(fields["Adjust Qty By"]),
            date=iso_date,
            memo=fields["Memo"],
            file=name,
        )
    return Transaction(
        kind="transfer",
        reference=fields["External Id"],
        item=fields["Item"],
        location=fields["From Location"],
        to_location=fields["To Location"],
        quantity=int(fields["Adjust Qty By"]),
        date=iso_date,
        memo=fields["Memo"],
        file=name,
    )
