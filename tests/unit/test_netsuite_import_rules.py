"""What the simulated import maps accept: one rejected case per rule, with its message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from sinks.csv_render import NETSUITE_MAX_ROWS, render
from sinks.feeds import ADJUSTMENT, TRANSFER, AdjustmentRow, AnyFeed, TransferRow
from streams.core.routing import count_reference, variance_reference
from streams.netsuite.books import (
    Transaction,
    open_ledger,
    record_import,
    transfer_exists,
)
from streams.netsuite.import_rules import (
    FileRejected,
    cycle_count_id,
    parse_import_file,
    render_ack,
    render_errors,
)
from tests.factories import count, line, variance

ADJ_HEADER = (
    b"Reference No,Adjustment Account,Item,Adjust Qty By,Location,Date,Memo,Subsidiary,"
    b"HC Inventory Adj Id\r\n"
)
TRANSFER_HEADER = (
    b"External Id,Item,Adjust Qty By,From Location,To Location,Date,Memo,Subsidiary\r\n"
)
ADJ_ROW = "CC1001-10017,927,3410,-3,254,02/29/2024,Inventory cycle count by HotWax,1,CC1001-10017"
TRANSFER_ROW = "VL-dmg-1,3410,5,254,1099,06/20/2022,Damaged,1"


def adjustment(
    reference: str = "CC1001-10017", quantity: int = -3, memo: str = "Counted"
) -> AdjustmentRow:
    return AdjustmentRow(reference, "927", "3410", quantity, "254", date(2024, 2, 29), memo, "1")


def transfer(external_id: str = "VL-dmg-1", quantity: int = 5) -> TransferRow:
    return TransferRow(
        external_id, "3410", quantity, "254", "1099", date(2022, 6, 20), "Damaged", "1"
    )


def rejected(feed: AnyFeed, data: bytes) -> tuple[str, ...]:
    with pytest.raises(FileRejected) as caught:
        parse_import_file(feed, "f.csv", data)
    return caught.value.problems


def adj_file(*rows: str) -> bytes:
    return ADJ_HEADER + b"".join(row.encode() + b"\r\n" for row in rows)


def transfer_file(*rows: str) -> bytes:
    return TRANSFER_HEADER + b"".join(row.encode() + b"\r\n" for row in rows)


def test_a_rendered_adjustment_file_books_each_row() -> None:
    rows = [adjustment(), adjustment("VL-lost-1", 2, 'Lost, "really"')]
    booked = parse_import_file(ADJUSTMENT, "a.csv", render(ADJUSTMENT, rows))
    assert booked == [
        Transaction(
            "adjustment", "CC1001-10017", "3410", "254", None, -3, "2024-02-29", "Counted", "a.csv"
        ),
        Transaction(
            "adjustment",
            "VL-lost-1",
            "3410",
            "254",
            None,
            2,
            "2024-02-29",
            'Lost, "really"',
            "a.csv",
        ),
    ]


def test_a_rendered_transfer_file_books_each_row() -> None:
    rows = [transfer(), transfer("VL-dmg-2", 1)]
    booked = parse_import_file(TRANSFER, "t.csv", render(TRANSFER, rows))
    assert booked == [
        Transaction(
            "transfer", "VL-dmg-1", "3410", "254", "1099", 5, "2022-06-20", "Damaged", "t.csv"
        ),
        Transaction(
            "transfer", "VL-dmg-2", "3410", "254", "1099", 1, "2022-06-20", "Damaged", "t.csv"
        ),
    ]


@pytest.mark.parametrize("data", [b"", ADJ_HEADER, ADJ_HEADER.rstrip()])
def test_an_empty_or_header_only_file_books_nothing(data: bytes) -> None:
    assert parse_import_file(ADJUSTMENT, "e.csv", data) == []


def test_lf_line_ends_read_like_crlf() -> None:
    crlf = render(ADJUSTMENT, [adjustment(), adjustment("CC1001-10019", 5)])
    lf = crlf.replace(b"\r\n", b"\n")
    assert parse_import_file(ADJUSTMENT, "a.csv", lf) == parse_import_file(
        ADJUSTMENT, "a.csv", crlf
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"Reference No,\xff\r\n", "not UTF-8: byte 0xff at offset 13"),
        (
            TRANSFER_HEADER,
            "line 1: header 'External Id,Item,Adjust Qty By,From Location,To Location,Date,Memo,"
            "Subsidiary' is not the custimport_inventoryadjustment_hc header 'Reference No,"
            "Adjustment Account,Item,Adjust Qty By,Location,Date,Memo,Subsidiary,"
            "HC Inventory Adj Id'",
        ),
        (b"\xef\xbb\xbf" + ADJ_HEADER, "line 1: header '\\ufeffReference No,"),
        (ADJ_HEADER.replace(b"Memo", b"memo"), "line 1: header 'Reference No,Adjustment Account,"),
    ],
)
def test_a_file_that_is_not_the_import_map_is_rejected_whole(data: bytes, problem: str) -> None:
    (only,) = rejected(ADJUSTMENT, data + ADJ_ROW.encode())
    assert only.startswith(problem)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("CC1-1,927,3410,-3,254,02/29/2024,Memo,1", "line 2: 8 columns, expected 9"),
        ("", "line 2: blank line"),
        ('CC1-1,927,3410,-3,254,02/29/2024,"Memo"x,1,CC1-1', "line 2: malformed CSV: "),
        ("CC1-1,AB,3410,-3,254,02/29/2024,M,1,CC1-1", "line 2: Adjustment Account 'AB' is not a"),
        ("CC1-1,927,,-3,254,02/29/2024,M,1,CC1-1", "line 2: Item '' is not a NetSuite internal id"),
        ("CC1-1,927,3410,-3,25 4,02/29/2024,M,1,CC1-1", "line 2: Location '25 4' is not a"),
        ("CC1-1,927,3410,-3,254,02/29/2024,M,\u0661,CC1-1", "line 2: Subsidiary '\u0661' is not a"),
        (
            "CC1-1,927,3410,1.5,254,02/29/2024,M,1,CC1-1",
            "line 2: Adjust Qty By '1.5' is not an integer",
        ),
        (
            "CC1-1,927,3410,+2,254,02/29/2024,M,1,CC1-1",
            "line 2: Adjust Qty By '+2' is not an integer",
        ),
        ('CC1-1,927,3410,"1,000",254,02/29/2024,M,1,CC1-1', "line 2: Adjust Qty By '1,000' is not"),
        (
            "CC1-1,927,3410,0,254,02/29/2024,M,1,CC1-1",
            "line 2: Adjust Qty By is 0: an adjustment must change the quantity",
        ),
        (
            "CC1-1,927,3410,-1000000000000000,254,02/29/2024,M,1,CC1-1",
            "line 2: Adjust Qty By '-1000000000000000' is out of range",
        ),
        ("CC1-1,927,3410,-3,254,02/30/2024,M,1,CC1-1", "line 2: Date '02/30/2024' is not a valid"),
        ("CC1-1,927,3410,-3,254,2024-02-29,M,1,CC1-1", "line 2: Date '2024-02-29' is not a valid"),
        ("CC1-1,927,3410,-3,254,2/29/2024,M,1,CC1-1", "line 2: Date '2/29/2024' is not a valid"),
        (
            "CC1-1,927,3410,-3,254,02/29/2024,M,1,CC1-2",
            "line 2: HC Inventory Adj Id 'CC1-2' is not the Reference No 'CC1-1'",
        ),
        (",927,3410,-3,254,02/29/2024,M,1,", "line 2: Reference No is empty"),
    ],
)
def test_each_broken_adjustment_rule_names_its_line_and_column(row: str, problem: str) -> None:
    (only,) = rejected(ADJUSTMENT, adj_file(row, ADJ_ROW))
    assert only.startswith(problem)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "VL-1,3410,-5,254,1099,06/20/2022,D,1",
            "line 2: Adjust Qty By '-5' must be positive in a transfer",
        ),
        (
            "VL-1,3410,0,254,1099,06/20/2022,D,1",
            "line 2: Adjust Qty By '0' must be positive in a transfer",
        ),
        (
            "VL-1,3410,5,254,X1,06/20/2022,D,1",
            "line 2: To Location 'X1' is not a NetSuite internal id",
        ),
        (
            "VL-1,3410,5,,1099,06/20/2022,D,1",
            "line 2: From Location '' is not a NetSuite internal id",
        ),
        (
            "VL-1,3410,5,254,254,06/20/2022,D,1",
            "line 2: From Location and To Location are both '254'",
        ),
        (",3410,5,254,1099,06/20/2022,D,1", "line 2: External Id is empty"),
        (
            "VL-1,3410,5,254,1099,13/01/2022,D,1",
            "line 2: Date '13/01/2022' is not a valid MM/DD/YYYY",
        ),
    ],
)
def test_each_broken_transfer_rule_names_its_line_and_column(row: str, problem: str) -> None:
    (only,) = rejected(TRANSFER, transfer_file(row, TRANSFER_ROW))
    assert only.startswith(problem)


def test_every_problem_of_a_file_is_listed_in_line_order() -> None:
    problems = rejected(
        TRANSFER,
        transfer_file(
            TRANSFER_ROW, "VL-2,x,5,254,1099,06/20/2022,D,1", "VL-3,3410,-1,254,1099,1/1/2022,D,1"
        ),
    )
    assert problems == (
        "line 3: Item 'x' is not a NetSuite internal id (digits only)",
        "line 4: Adjust Qty By '-1' must be positive in a transfer",
        "line 4: Date '1/1/2022' is not a valid MM/DD/YYYY date",
    )
    assert FileRejected(problems).summary == problems[0] + " (and 2 more)"


def test_an_external_id_may_appear_once_per_file() -> None:
    problems = rejected(
        TRANSFER, transfer_file(TRANSFER_ROW, "x,1,1,1,2,01/01/2024,m,1", TRANSFER_ROW)
    )
    assert problems == ("line 4: External Id 'VL-dmg-1' repeats line 2",)


def test_an_external_id_already_booked_in_netsuite_is_rejected(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        first = parse_import_file(TRANSFER, "t1.csv", transfer_file(TRANSFER_ROW))
        record_import(ledger, first, file="t1.csv", feed="inventorytransfer", at="now")
        with pytest.raises(FileRejected) as caught:
            parse_import_file(
                TRANSFER,
                "t2.csv",
                transfer_file("VL-new,3410,1,254,1099,06/20/2022,D,1", TRANSFER_ROW),
                lambda external_id: transfer_exists(ledger, external_id),
            )
    assert caught.value.problems == ("line 3: External Id 'VL-dmg-1' already exists in NetSuite",)


def test_more_rows_than_netsuite_imports_at_once_are_rejected() -> None:
    rows = [adjustment(f"CC1-{i}", 1) for i in range(NETSUITE_MAX_ROWS + 1)]
    problems = rejected(ADJUSTMENT, render(ADJUSTMENT, rows))
    assert problems == ("25001 rows; NetSuite imports at most 25000 per file",)


def test_count_rows_carry_the_oms_count_id_and_variance_rows_none() -> None:
    counted = count(line("10017", "3410", counted=7, system=10), count_id="CC1001")
    with_ids = count(
        line("1", "2", counted=1, system=0, inventory_item_id="II9", physical_inventory_id="PI3"),
        count_id="CC7",
    )
    assert cycle_count_id(count_reference(counted, counted.lines[0])) == "CC1001"
    assert cycle_count_id(count_reference(with_ids, with_ids.lines[0])) == "CC7"
    assert cycle_count_id(variance_reference(variance(-1, event_id="CC1-x"))) is None
    assert cycle_count_id("NODASH") is None


def test_acknowledgement_and_error_files_are_netsuite_csvs() -> None:
    assert render_ack([("CC1001", 1), ("CC1001", 2)]) == (
        b"workEffortId,externalId\r\nCC1001,1\r\nCC1001,2\r\n"
    )
    assert render_errors("f.csv", ["line 2: Item 'x, y' is bad"]) == (
        b"fileName,errorMessage\r\nf.csv,\"line 2: Item 'x, y' is bad\"\r\n"
    )
