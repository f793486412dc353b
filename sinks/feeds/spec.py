"""What a NetSuite feed is: one import map, its folder, its CSV shape and what it takes.

A feed is a value, not a branch in the code: each feed module (`adjustment.py`,
`transfer.py`) defines one `FeedSpec`, and the registry (`sinks.feeds.registry`) is the
only list of them. Code that needs a feed's details asks its spec; code that handles
every feed iterates the registry (docs/architecture.md, "How to add a feed").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from schemas.models import EventKind

# Folder names below a feed's folder. NetSuite reads csv/ and writes the others.
FEED_SUBDIRS = ("csv", "archive", "failed", "error", ".staging")
# Our own folder beside the feed folders: batch ledger and audit manifests.
STATE_DIR = "variance-sync"


class NetSuiteRecord(StrEnum):
    """What NetSuite books from one row. NetSuite's record types, not ours: closed."""

    ADJUSTMENT = "adjustment"  # changes one location's quantity by a signed amount
    TRANSFER = "transfer"  # moves a positive quantity from one location to another


class FeedRow(Protocol):
    """One CSV row of some feed, already in NetSuite's terms (internal ids)."""

    @property
    def reference(self) -> str:
        """The row's identity in NetSuite (Reference No or External Id)."""
        ...

    @property
    def booked_location(self) -> str:
        """The location NetSuite files the row under (a transfer's From Location)."""
        ...

    @property
    def item_id(self) -> str: ...

    @property
    def quantity(self) -> int: ...

    def location_totals(self) -> dict[str, int]:
        """What the row does to each location's quantity."""
        ...


RowT = TypeVar("RowT", bound=FeedRow)


@dataclass(frozen=True, slots=True)
class RowFacts:
    """One exported change in NetSuite's terms, before a feed gives it its shape.

    Built from an event and the config by `streams.core.routing`; a feed claims it or not
    (`FeedSpec.claims`) and makes its row from it (`FeedSpec.row`).
    """

    kind: EventKind
    reason_id: str  # a logged variance's reason; count lines: CYCLE_COUNT
    reference: str
    item_id: str
    quantity: int  # signed: what the facility gained or lost
    location_id: str
    on: date  # the retailer's business day
    memo: str
    adjustment_account_id: str
    subsidiary_id: str
    # [netsuite.variance_locations] for the reason: where a transfer would move stock.
    variance_location_id: str | None = None


@dataclass(frozen=True, slots=True)
class Columns:
    """Which header column plays which part when NetSuite's import map reads a row."""

    reference: str
    item: str
    quantity: str
    location: str  # the adjusted location, or a transfer's From Location
    date: str
    memo: str
    ids: tuple[str, ...]  # columns that must hold NetSuite internal ids
    to_location: str | None = None  # a transfer's To Location
    # (column, column it must repeat): the OMS id echoed beside the reference.
    echoes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, eq=False)
class FeedSpec(ABC, Generic[RowT]):
    """One NetSuite import feed. Identity is the object: each feed module makes one."""

    name: str  # the feed's folder under the SFTP base dir, and its label in metrics
    import_map: str  # the saved CSV import map that NetSuite's scheduled script runs
    file_label: str  # the feed's word in file names, as the OMS's own feeds name theirs
    header: tuple[str, ...]
    columns: Columns
    record: NetSuiteRecord
    row_type: type[RowT]
    kinds: frozenset[EventKind]  # the events whose rows it may take
    # Routing asks feeds in ascending precedence; the first that claims a row takes it.
    precedence: int

    @abstractmethod
    def claims(self, facts: RowFacts) -> bool:
        """Whether this feed takes the row for `facts` (asked only for `kinds`)."""

    @abstractmethod
    def row(self, facts: RowFacts) -> RowT:
        """The row this feed makes of `facts`."""

    @abstractmethod
    def cells(self, row: RowT) -> tuple[str, ...]:
        """The row's CSV cells, in header order, as NetSuite must read them."""

    @property
    def csv_dir(self) -> str:
        return f"{self.name}/csv"

    @property
    def archive_dir(self) -> str:
        return f"{self.name}/archive"

    @property
    def failed_dir(self) -> str:
        return f"{self.name}/failed"

    @property
    def error_dir(self) -> str:
        return f"{self.name}/error"

    @property
    def staging_dir(self) -> str:
        # A sibling of csv/ on the same filesystem, so the final rename is atomic.
        return f"{self.name}/.staging"

    def cells_of(self, row: FeedRow) -> tuple[str, ...]:
        """`cells`, for a row of any feed: ValueError if it is not this feed's row type."""
        if not isinstance(row, self.row_type):
            # ValueError, as for any other cell that cannot be written: the caller's data.
            message = f"{type(row).__name__} cannot go in the {self.name} feed"
            raise ValueError(message)  # noqa: TRY004
        return self.cells(row)

    def __repr__(self) -> str:
        return f"<feed {self.name}>"


AnyFeed = FeedSpec[Any]


@dataclass(frozen=True, slots=True)
class FeedExport:
    """A row and the feed that takes it."""

    feed: AnyFeed
    row: FeedRow
