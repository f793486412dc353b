"""The NetSuite CSV layout, checked byte for byte against hand-written golden files."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.csv_render import NETSUITE_MAX_ROWS, chunk_rows, render
from sinks.feeds import ADJUSTMENT, TRANSFER, AdjustmentRow, AnyFeed, FeedRow, TransferRow
from sinks.feeds.cells import neutralise_text, single_line

GOLDEN = Path(__file__).parent / "golden"
COUNT_MEMO = "Inventory cycle count by HotWax"
LEAP_DAY = date(2024, 2, 29)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def adj(
    ref: str, item: str, qty: int, *, loc: str = "254", day: date = LEAP_DAY, memo: str = COUNT_MEMO
) -> AdjustmentRow:
    return AdjustmentRow(ref, "927", item, qty, loc, day, memo, "1")


def xfer(
    ext: str, qty: int, src: str, dst: str, *, day: date = LEAP_DAY, memo: str, item: str = "3410"
) -> TransferRow:
    return TransferRow(ext, item, qty, src, dst, day, memo, "1")


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_headers_match_the_import_maps() -> None:
    assert ",".join(ADJUSTMENT.header) == (
        "Reference No,Adjustment Account,Item,Adjust Qty By,Location,Date,Memo,Subsidiary,"
        "HC Inventory Adj Id"
    )
    assert ",".join(TRANSFER.header) == (
        "External Id,Item,Adjust Qty By,From Location,To Location,Date,Memo,Subsidiary"
    )


@pytest.mark.parametrize(
    ("feed", "name"),
    [(ADJUSTMENT, "adjustment_header_only.csv"), (TRANSFER, "transfer_header_only.csv")],
)
def test_zero_rows_render_the_header_only(feed: AnyFeed, name: str) -> None:
    assert render(feed, []) == golden(name)


def test_adjustments_positive_and_negative_deltas() -> None:
    rows = [
        adj("CC1001-10017", "3410", -3),
        adj("CC1001-10018", "3411", 12),
        adj("100234-100987", "3412", 1),
        adj("VL-3b1e77a0", "3410", -2, loc="255", day=date(2022, 6, 20), memo="Lost"),
        adj("VL-c0ffee01", "3413", -40000, loc="255", day=date(2022, 12, 31), memo="VAR_STOLEN"),
    ]
    data = render(ADJUSTMENT, rows)
    assert data == golden("adjustment_deltas.csv")
    # The DESIGN section 4 example row, verbatim.
    assert data.split(b"\r\n")[1] == (
        b"CC1001-10017,927,3410,-3,254,02/29/2024,Inventory cycle count by HotWax,1,CC1001-10017"
    )


def test_transfers_move_positive_units_in_both_directions() -> None:
    rows = [
        xfer(
            "VL-8f2c41d0", 5, "254", "1099", day=date(2022, 6, 20), memo="Damaged"
        ),  # damaged: out
        xfer(
            "VL-a71e09b3", 2, "1097", "254", day=date(2022, 6, 21), memo="Found"
        ),  # found: back in
        xfer("VL-5d5d5d5d", 12000, "254", "1098", day=date(2023, 1, 5), memo="Stolen", item="3414"),
    ]
    data = render(TRANSFER, rows)
    assert data == golden("transfer_directions.csv")
    assert data.split(b"\r\n")[1] == b"VL-8f2c41d0,3410,5,254,1099,06/20/2022,Damaged,1"


def test_memos_with_commas_quotes_and_line_breaks() -> None:
    memos = [
        "Damaged, box crushed",
        'Box "crushed" in transit',
        'Box "A", shelf 3',
        "Found in back room\r\nby the\tdoor",
        '"Quoted", then a\u00a0space',
        "",
    ]
    rows = [
        adj(
            f"VL-{i:04d}",
            "3410",
            2 if "Found" in m or "Quoted" in m else -1,
            day=date(2024, 3, 1),
            memo=m,
        )
        for i, m in enumerate(memos, start=1)
    ]
    assert render(ADJUSTMENT, rows) == golden("memo_quoting.csv")


def test_non_ascii_memos_are_utf8_without_bom() -> None:
    rows = [
        xfer("VL-e1", 3, "254", "1099", day=date(2023, 11, 2), memo="Dañado — caja rota"),
        xfer("VL-e2", 1, "254", "1099", day=date(2023, 11, 2), memo="破損した箱 / 파손된 상자"),
        xfer("VL-e3", 4, "1097", "254", day=date(2023, 11, 3), memo="Gefunden: Größe „M“, 📦"),
    ]
    data = render(TRANSFER, rows)
    assert data == golden("non_ascii.csv")
    assert not data.startswith(b"\xef\xbb\xbf")


def test_formulas_in_adjustment_text_cells_are_neutralised() -> None:
    rows = [
        adj('=HYPERLINK("http://evil.example","x")', "3410", -3, memo="+1 found"),
        adj("-CC1001-10017", "3410", -3, memo="-3 units damaged"),
        adj("@CC1002-1", "3410", 5, memo="@SUM(A1:A9)"),
        # A leading TAB in a memo is trimmed away with the other breaks, and what it led
        # is neutralised like any other formula.
        adj("\tCC1003-1", "3410", -7, memo="\t=cmd|' /C calc'!A0"),
        adj("CC1004-1", "3410", -3, memo="=1+1"),
    ]
    data = render(ADJUSTMENT, rows)
    assert data == golden("formula_adjustment.csv")
    assert [record[3] for record in parse(data)[1:]] == ["-3", "-3", "5", "-7", "-3"]


def test_formulas_in_transfer_text_cells_are_neutralised() -> None:
    rows = [
        xfer("+VL-1", 5, "254", "1099", day=date(2022, 6, 20), memo="-Damaged"),
        xfer("\rVL-2", 1, "254", "1099", day=date(2022, 6, 20), memo="=2*3"),
    ]
    assert render(TRANSFER, rows) == golden("formula_transfer.csv")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-3", "'-3"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("", ""),
        ("CC1001-10017", "CC1001-10017"),
        (" =1", " =1"),
        ("'=1", "'=1"),
        ("a=b", "a=b"),
    ],
)
def test_neutralise_text(value: str, expected: str) -> None:
    assert neutralise_text(value) == expected


@pytest.mark.parametrize(
    ("memo", "expected"),
    [
        ("a\r\nb", "a b"),
        ("a\n\nb", "a  b"),
        ("a\rb\tc\n", "a b c"),
        ("a\x00b\u2028c\x0bd\x7fe", "a b c d e"),
        ("\n=HYPERLINK(1)", "=HYPERLINK(1)"),
        ("plain", "plain"),
    ],
)
def test_single_line(memo: str, expected: str) -> None:
    assert single_line(memo) == expected


@pytest.mark.parametrize(
    ("feed", "row"),
    [
        (ADJUSTMENT, xfer("VL-1", 1, "254", "1099", memo="Damaged")),
        (TRANSFER, adj("CC1-1", "3410", -1)),
    ],
)
def test_a_row_of_the_other_feed_is_rejected(feed: AnyFeed, row: FeedRow) -> None:
    with pytest.raises(ValueError, match="cannot go in"):
        render(feed, [row])


def test_a_bool_quantity_is_rejected() -> None:
    with pytest.raises(ValueError, match="quantity"):
        render(ADJUSTMENT, [adj("CC1-1", "3410", True)])


def test_dates_are_zero_padded() -> None:
    data = render(ADJUSTMENT, [adj("CC1-1", "3410", 1, day=date(999, 1, 2))])
    assert parse(data)[1][5] == "01/02/0999"


def count_rows(n: int) -> list[AdjustmentRow]:
    return [
        adj(
            f"CC2000-{7000 + i}",
            str(3000 + i),
            (i + 1) * (1 if i % 2 == 0 else -1),
            day=date(2024, 4, 1 + i // 10),
        )
        for i in range(n)
    ]


def test_chunking_25_rows_by_10_gives_three_files_each_with_a_header() -> None:
    chunks = chunk_rows(count_rows(25), 10)
    assert [len(c) for c in chunks] == [10, 10, 5]
    for number, chunk in enumerate(chunks, start=1):
        assert render(ADJUSTMENT, chunk) == golden(f"chunk_part{number}of3.csv")


def test_chunking_keeps_order_and_exact_multiples() -> None:
    rows = count_rows(20)
    chunks = chunk_rows(rows, 10)
    assert [len(c) for c in chunks] == [10, 10]
    assert [row for chunk in chunks for row in chunk] == rows
    assert chunk_rows(rows, NETSUITE_MAX_ROWS) == [rows]
    assert chunk_rows([], 10) == []


@pytest.mark.parametrize("limit", [0, -1, NETSUITE_MAX_ROWS + 1])
def test_chunk_limits_outside_what_netsuite_accepts_are_rejected(limit: int) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        chunk_rows(count_rows(3), limit)


@given(ref=st.text(min_size=1), memo=st.text(), qty=st.integers())
def test_adjustment_cells_round_trip_through_csv_reader(ref: str, memo: str, qty: int) -> None:
    data = render(ADJUSTMENT, [adj(ref, "3410", qty, memo=memo)])
    header, record = parse(data)
    assert tuple(header) == ADJUSTMENT.header
    assert record[0] == record[8] == neutralise_text(ref)
    assert record[6] == neutralise_text(single_line(memo))
    assert record[3] == str(qty)
    assert int(record[3]) == qty


@given(ext=st.text(min_size=1), memo=st.text(), qty=st.integers(min_value=1))
def test_transfer_cells_round_trip_through_csv_reader(ext: str, memo: str, qty: int) -> None:
    data = render(TRANSFER, [xfer(ext, qty, "254", "1099", memo=memo)])
    header, record = parse(data)
    assert tuple(header) == TRANSFER.header
    assert record[0] == neutralise_text(ext)
    assert record[6] == neutralise_text(single_line(memo))
    assert record[2] == str(qty)


@given(memo=st.text())
def test_every_line_ends_with_crlf_and_memos_never_span_lines(memo: str) -> None:
    data = render(ADJUSTMENT, [adj("CC1-1", "3410", -3, memo=memo)])
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n") == 2


@given(ref=st.text(min_size=1), memo=st.text(), qty=st.integers())
def test_no_text_cell_can_start_a_formula_and_quantities_stay_numbers(
    ref: str, memo: str, qty: int
) -> None:
    data = render(ADJUSTMENT, [adj(ref, "3410", qty, memo=memo)])
    _, record = parse(data)
    for text_cell in (record[0], record[6], record[8]):
        assert not text_cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert record[3] == str(qty)  # a negative quantity keeps its '-'
