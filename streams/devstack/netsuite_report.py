"""`variance-sync netsuite-sim --report`: what the simulated NetSuite booked.

A summary by default (a busy ledger holds thousands of balances); `--full` prints every
balance and the import log, `--json` all of it as JSON."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from streams.errors import UsageError
from streams.netsuite.books import balances, open_books
from streams.output import print_json

SHOWN_FAILURES = 10


def report(ledger_path: Path, *, full: bool, as_json: bool) -> int:
    if not ledger_path.is_file():
        raise UsageError(f"no ledger at {ledger_path}; run `variance-sync netsuite-sim` first")
    with open_books(ledger_path) as ledger:
        books = read_books(ledger)
    if as_json:
        print_json(books)
    elif full:
        render_full(books)
    else:
        render_summary(books, ledger_path)
    return 0


def read_books(ledger: sqlite3.Connection) -> dict[str, Any]:
    # Internal ids are digit strings: numeric order reads naturally.
    found = sorted(balances(ledger).items(), key=lambda kv: (int(kv[0][0]), int(kv[0][1])))
    imports = ledger.execute(
        "SELECT at, feed, file, outcome, rows, COALESCE(error, '') FROM imports ORDER BY rowid"
    ).fetchall()
    (transactions,) = ledger.execute("SELECT COUNT(*) FROM transactions").fetchone()
    names = ("at", "feed", "file", "outcome", "rows", "error")
    return {
        "transactions": transactions,
        "balances": [{"location": loc, "item": item, "quantity": q} for (loc, item), q in found],
        "imports": [dict(zip(names, row, strict=True)) for row in imports],
    }


def render_summary(books: dict[str, Any], path: Path) -> None:
    console = Console(markup=False, highlight=False)  # file names and errors are data
    outcomes = Counter((i["feed"], i["outcome"]) for i in books["imports"])
    by_location: Counter[str] = Counter()
    for balance in books["balances"]:
        by_location[balance["location"]] += balance["quantity"]
    console.print(
        f"NetSuite books in {path}: {books['transactions']} transaction(s), "
        f"{len(books['balances'])} balance(s) at {len(by_location)} location(s)"
    )
    for feed in sorted({feed for feed, _ in outcomes}):
        console.print(
            f"  {feed}: {outcomes[(feed, 'archived')]} file(s) imported, "
            f"{outcomes[(feed, 'failed')]} failed"
        )
    if books["imports"]:
        last = books["imports"][-1]
        console.print(f"  last import: {last['at']} {last['file']} ({last['outcome']})")
    failures = [i for i in books["imports"] if i["outcome"] == "failed"]
    for failure in failures[-SHOWN_FAILURES:]:
        console.print(f"  failed: {failure['file']}: {failure['error']}")
    table = Table("location", Column("net quantity", justify="right"), title="by location")
    for location, quantity in sorted(by_location.items(), key=lambda kv: int(kv[0])):
        table.add_row(location, str(quantity))
    console.print(table)
    console.print("--full shows every balance and the import log; --json prints all of it")


def render_full(books: dict[str, Any]) -> None:
    console = Console(markup=False, highlight=False)
    table = Table(
        "location",
        "item",
        Column("quantity", justify="right"),
        title=f"balances ({books['transactions']} transactions)",
    )
    for balance in books["balances"]:
        table.add_row(balance["location"], balance["item"], str(balance["quantity"]))
    console.print(table)
    columns = ("at", "feed", "file", "outcome", "rows", "error")
    log_table = Table(*(Column(c, overflow="fold") for c in columns), title="import log")
    for entry in books["imports"]:
        log_table.add_row(*(str(entry[c]) for c in columns))
    console.print(log_table)
