"""The saved-search export that reconciliation reads NetSuite's books from.

In production a NetSuite saved search over this integration's transaction lines is
exported as CSV and dropped on the SFTP server; the simulator writes the same file from
its books (`netsuite-sim --export`). One line per transaction line, header included:
`Type,Reference No,Item,Location,To Location,Quantity`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from streams.errors import UsageError
from streams.netsuite.books import Transaction

EXPORT_HEADER = ("Type", "Reference No", "Item", "Location", "To Location", "Quantity")
EXPORT_KINDS = {"Inventory Adjustment": "adjustment", "Inventory Transfer": "transfer"}
_TYPES = {kind: label for label, kind in EXPORT_KINDS.items()}


def render_export(transactions: Sequence[Transaction]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for t in transactions:
        writer.writerow(
            (_TYPES[t.kind], t.reference, t.item, t.location, t.to_location or "", t.quantity)
        )
    return out.getvalue().encode("utf-8")


def parse_export(data: bytes, name: str) -> list[Transaction]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text, as the saved search exports") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != EXPORT_HEADER:
        raise UsageError(f"{name}: the header must be {','.join(EXPORT_HEADER)}")
    found = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(EXPORT_HEADER) or row[0] not in EXPORT_KINDS:
            raise UsageError(f"{name}: line {number} is not a {' or '.join(EXPORT_KINDS)} line")
        kind, reference, item, location, to_location, quantity = row
        try:
            amount = int(quantity)
        except ValueError:
            raise UsageError(
                f"{name}: line {number}: quantity {quantity!r} is not an integer"
            ) from None
        found.append(
            Transaction(
                EXPORT_KINDS[kind],
                reference,
                item,
                location,
                to_location or None,
                amount,
                "",
                "",
                name,
            )
        )
    return found
