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
from typing import assert_never

from sinks.csv_render import NETSUITE_MAX_ROWS
from sinks.feeds import ADJUSTMENT, AnyFeed, NetSuiteRecord
from sinks.rejections import ERROR_HEADER
from streams.errors import StreamsError
from streams.netsuite.books import Transaction

# streams.core.routing.variance_reference: logged variances are `VL-<event_id>`; every other
# adjustment row is a count line, `<count_id>-...`, and count ids contain no `-`.
VARIANCE_REFERENCE_PREFIX = "VL-"
ACK_HEADER = ("workEffortId", "externalId")
# Where NetSuite's script writes its cycle-count acknowledgements: beside the adjustment
# feed, whichever feed took the count rows (the OMS's import job reads them there).
ACK_DIR = f"{ADJUSTMENT.name}/cycle_count"

# ASCII only: str.isdigit() and `\d` would also accept other scripts' digits.
_INTERNAL_ID = re.compile(r"[0-9]{1,18}")
_INTEGER = re.compile(r"-?[0-9]+")
# Keeps every balance far inside SQLite's 64-bit integers, whatever the files hold.
_MAX_QUANTITY_DIGITS = 15
_DATE = re.compile(r"(?P<month>[0-9]{2})/(?P<day>[0-9]{2})/(?P<year>[0-9]{4})")


class FileRejected(StreamsError):
    """The file breaks the import map; `problems` lists each break, in file order."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        """The first problem, and how many more there are: one line for logs."""
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more)" if more else "")


def _nothing_booked(_external_id: str) -> bool:
    return False


def parse_import_file(
    feed: AnyFeed,
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
    header = feed.header
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
            if feed.record is NetSuiteRecord.TRANSFER and not row_problems:
                reference = fields[feed.columns.reference]
                row_problems = _check_external_id(reference, line, first_seen, transfer_booked)
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


def _check_row(feed: AnyFeed, fields: Mapping[str, str]) -> list[str]:
    columns = feed.columns
    problems = _check_ids(fields, columns.ids)
    problems += _check_text(fields, columns.reference)
    for echo, original in columns.echoes:
        if fields[echo] != fields[original]:
            problems.append(f"{echo} {fields[echo]!r} is not the {original} {fields[original]!r}")
    if columns.to_location is not None and fields[columns.location] == fields[columns.to_location]:
        problems.append(
            f"{columns.location} and {columns.to_location} are both {fields[columns.location]!r}"
        )
    problems += _check_quantity(feed.record, columns.quantity, fields[columns.quantity])
    if _parse_date(fields[columns.date]) is None:
        problems.append(f"{columns.date} {fields[columns.date]!r} is not a valid MM/DD/YYYY date")
    return problems


def _check_ids(fields: Mapping[str, str], columns: Sequence[str]) -> list[str]:
    return [
        f"{column} {fields[column]!r} is not a NetSuite internal id (digits only)"
        for column in columns
        if _INTERNAL_ID.fullmatch(fields[column]) is None
    ]


def _check_text(fields: Mapping[str, str], column: str) -> list[str]:
    return [] if fields[column] else [f"{column} is empty"]


def _check_quantity(record: NetSuiteRecord, column: str, cell: str) -> list[str]:
    if _INTEGER.fullmatch(cell) is None:
        return [f"{column} {cell!r} is not an integer"]
    if len(cell.lstrip("-")) > _MAX_QUANTITY_DIGITS:
        return [f"{column} {cell!r} is out of range"]
    quantity = int(cell)
    match record:
        case NetSuiteRecord.TRANSFER if quantity <= 0:
            return [f"{column} {cell!r} must be positive in a transfer"]
        case NetSuiteRecord.ADJUSTMENT | NetSuiteRecord.TRANSFER:
            pass
        case _:
            assert_never(record)
    if quantity == 0:
        return [f"{column} is 0: an adjustment must change the quantity"]
    return []


def _check_external_id(
    external_id: str,
    line: int,
    first_seen: dict[str, int],
    transfer_booked: Callable[[str], bool],
) -> list[str]:
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


def _transaction(feed: AnyFeed, fields: Mapping[str, str], name: str) -> Transaction:
    # Only called on rows whose Date is valid MM/DD/YYYY; the books keep ISO dates.
    columns = feed.columns
    month, day, year = fields[columns.date].split("/")
    to_location = fields[columns.to_location] if columns.to_location is not None else None
    return Transaction(
        kind=feed.record.value,
        reference=fields[columns.reference],
        item=fields[columns.item],
        location=fields[columns.location],
        to_location=to_location,
        quantity=int(fields[columns.quantity]),
        date=f"{year}-{month}-{day}",
        memo=fields[columns.memo],
        file=name,
    )
