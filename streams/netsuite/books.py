"""The simulated NetSuite's books: a SQLite file that `netsuite-sim` writes and
`reconcile` reads.

- `balances`: quantity per (location, item), changed by every imported row;
- `transactions`: one row per imported CSV row, keyed by its Reference No (adjustments)
  or External Id (transfers). External Ids are unique, as NetSuite's add mode enforces;
  Reference Nos are not, so a double import of an adjustment stays visible;
- `imports`: one row per file the importer handled, with its outcome.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streams.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (
    location TEXT NOT NULL,
    item TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (location, item)
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('adjustment', 'transfer')),
    reference TEXT NOT NULL,
    item TEXT NOT NULL,
    location TEXT NOT NULL,
    to_location TEXT,
    quantity INTEGER NOT NULL,
    date TEXT NOT NULL,
    memo TEXT NOT NULL,
    file TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS transfer_external_id
    ON transactions (reference) WHERE kind = 'transfer';
CREATE TABLE IF NOT EXISTS imports (
    file TEXT NOT NULL,
    feed TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('archived', 'failed')),
    rows INTEGER NOT NULL,
    error TEXT,
    at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Transaction:
    kind: str  # "adjustment" or "transfer"
    reference: str
    item: str
    location: str  # the adjusted location, or the transfer's From Location
    to_location: str | None
    quantity: int  # signed for adjustments, positive for transfers
    date: str
    memo: str
    file: str

    def effects(self) -> list[tuple[str, str, int]]:
        """(location, item, quantity change) of this transaction on the books."""
        if self.kind == "adjustment":
            return [(self.location, self.item, self.quantity)]
        assert self.to_location is not None  # noqa: S101 - transfers always have one
        return [
            (self.location, self.item, -self.quantity),
            (self.to_location, self.item, self.quantity),
        ]


@contextmanager
def open_ledger(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(SCHEMA)
        yield connection
    finally:
        connection.close()


@contextmanager
def open_books(path: Path) -> Iterator[sqlite3.Connection]:
    """`open_ledger` for a command: a file that cannot be opened is one line."""
    try:
        opened = open_ledger(path)
        connection = opened.__enter__()
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot open the ledger {path}: {exc}") from None
    try:
        yield connection
    finally:
        opened.__exit__(None, None, None)


def transfer_exists(connection: sqlite3.Connection, external_id: str) -> bool:
    query = "SELECT 1 FROM transactions WHERE kind = 'transfer' AND reference = ?"
    return connection.execute(query, (external_id,)).fetchone() is not None


def record_import(
    connection: sqlite3.Connection,
    transactions: list[Transaction],
    *,
    file: str,
    feed: str,
    at: str,
) -> None:
    """Book every transaction of one file in one SQL transaction, with its import row."""
    with connection:
        for t in transactions:
            connection.execute(
                "INSERT INTO transactions (kind, reference, item, location, to_location, quantity,"
                " date, memo, file, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    t.kind,
                    t.reference,
                    t.item,
                    t.location,
                    t.to_location,
                    t.quantity,
                    t.date,
                    t.memo,
                    t.file,
                    at,
                ),
            )
            for location, item, change in t.effects():
                connection.execute(
                    "INSERT INTO balances (location, item, quantity) VALUES (?, ?, ?)"
                    " ON CONFLICT (location, item)"
                    " DO UPDATE SET quantity = quantity + excluded.quantity",
                    (location, item, change),
                )
        connection.execute(
            "INSERT INTO imports (file, feed, outcome, rows, error, at)"
            " VALUES (?, ?, 'archived', ?, NULL, ?)",
            (file, feed, len(transactions), at),
        )


def record_failure(
    connection: sqlite3.Connection, *, file: str, feed: str, error: str, at: str
) -> None:
    with connection:
        connection.execute(
            "INSERT INTO imports (file, feed, outcome, rows, error, at)"
            " VALUES (?, ?, 'failed', 0, ?, ?)",
            (file, feed, error, at),
        )


def balances(connection: sqlite3.Connection) -> dict[tuple[str, str], int]:
    rows = connection.execute("SELECT location, item, quantity FROM balances")
    return {(location, item): quantity for location, item, quantity in rows}


def read_transactions(path: Path) -> list[Transaction]:
    """Every transaction booked in the ledger at `path`, read only (a reader never writes
    the schema into a file it was pointed at); one line when it is not a ledger."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return transactions(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read the ledger {path}: {exc}") from None


def transactions(connection: sqlite3.Connection) -> list[Transaction]:
    rows = connection.execute(
        "SELECT kind, reference, item, location, to_location, quantity, date, memo, file"
        " FROM transactions ORDER BY id"
    )
    return [Transaction(*row) for row in rows]
