"""NetSuite's saved-search export: what the simulator writes, reconcile reads."""

from __future__ import annotations

import pytest

from streams.errors import UsageError
from streams.netsuite.books import Transaction
from streams.netsuite.saved_search import parse_export, render_export


def test_the_books_round_trip_through_the_export() -> None:
    books = [
        Transaction("adjustment", "CC1-10017", "3410", "254", None, -3, "", "", "books.csv"),
        Transaction("transfer", "VL-e1", "3411", "254", "1099", 2, "", "", "books.csv"),
    ]
    assert parse_export(render_export(books), "books.csv") == books


def test_an_export_with_another_header_is_one_line() -> None:
    with pytest.raises(UsageError, match="the header must be Type,Reference No"):
        parse_export(b"Type,Ref\\r\\n", "books.csv")
