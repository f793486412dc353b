"""The inventory transfer feed: `custimport_inventory_transfer_hc` (DESIGN section 4).

Takes a logged variance whose reason has a variance location
(`[netsuite.variance_locations]`): the stock moves between the store and that location.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from schemas.models import EventKind
from sinks.feeds.cells import date_cell, memo_cell, neutralise_text, quantity_cell
from sinks.feeds.spec import Columns, FeedSpec, NetSuiteRecord, RowFacts


@dataclass(frozen=True, slots=True)
class TransferRow:
    """A row for `custimport_inventory_transfer_hc`. `quantity` is the positive number moved."""

    external_id: str
    item_id: str
    quantity: int
    from_location_id: str
    to_location_id: str
    date: date
    memo: str
    subsidiary_id: str

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"transfer quantity must be positive, got {self.quantity}")

    @property
    def reference(self) -> str:
        return self.external_id

    @property
    def booked_location(self) -> str:
        return self.from_location_id

    def location_totals(self) -> dict[str, int]:
        return {self.from_location_id: -self.quantity, self.to_location_id: self.quantity}


class TransferFeed(FeedSpec[TransferRow]):
    def claims(self, facts: RowFacts) -> bool:
        return facts.variance_location_id is not None

    def row(self, facts: RowFacts) -> TransferRow:
        if facts.variance_location_id is None:
            raise ValueError(f"{facts.reference} has no variance location to transfer with")
        # NetSuite transfers move a positive quantity; the sign picks the direction.
        store, other = facts.location_id, facts.variance_location_id
        source, target = (store, other) if facts.quantity < 0 else (other, store)
        return TransferRow(
            external_id=facts.reference,
            item_id=facts.item_id,
            quantity=abs(facts.quantity),
            from_location_id=source,
            to_location_id=target,
            date=facts.on,
            memo=facts.memo,
            subsidiary_id=facts.subsidiary_id,
        )

    def cells(self, row: TransferRow) -> tuple[str, ...]:
        return (
            neutralise_text(row.external_id),
            row.item_id,
            quantity_cell(row.quantity),
            row.from_location_id,
            row.to_location_id,
            date_cell(row.date),
            memo_cell(row.memo),
            row.subsidiary_id,
        )


TRANSFER = TransferFeed(
    name="inventorytransfer",
    import_map="custimport_inventory_transfer_hc",
    file_label="InventoryTransferFeed",
    header=(
        "External Id",
        "Item",
        "Adjust Qty By",
        "From Location",
        "To Location",
        "Date",
        "Memo",
        "Subsidiary",
    ),
    columns=Columns(
        reference="External Id",
        item="Item",
        quantity="Adjust Qty By",
        location="From Location",
        to_location="To Location",
        date="Date",
        memo="Memo",
        ids=("Item", "From Location", "To Location", "Subsidiary"),
    ),
    record=NetSuiteRecord.TRANSFER,
    row_type=TransferRow,
    kinds=frozenset({EventKind.VARIANCE_LOGGED}),
    precedence=50,
)
