"""The inventory adjustment feed: `custimport_inventoryadjustment_hc` (DESIGN section 4).

Takes every approved count line with a variance, and every logged variance of a synced
reason that has no variance location.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from schemas.models import EventKind
from sinks.feeds.cells import date_cell, memo_cell, neutralise_text, quantity_cell
from sinks.feeds.spec import Columns, FeedSpec, NetSuiteRecord, RowFacts


@dataclass(frozen=True, slots=True)
class AdjustmentRow:
    """A row for `custimport_inventoryadjustment_hc`. `quantity` is the signed adjustment."""

    reference_no: str
    adjustment_account_id: str
    item_id: str
    quantity: int
    location_id: str
    date: date
    memo: str
    subsidiary_id: str

    @property
    def reference(self) -> str:
        return self.reference_no

    @property
    def booked_location(self) -> str:
        return self.location_id

    def location_totals(self) -> dict[str, int]:
        return {self.location_id: self.quantity}


class AdjustmentFeed(FeedSpec[AdjustmentRow]):
    def claims(self, facts: RowFacts) -> bool:
        return facts.variance_location_id is None

    def row(self, facts: RowFacts) -> AdjustmentRow:
        return AdjustmentRow(
            reference_no=facts.reference,
            adjustment_account_id=facts.adjustment_account_id,
            item_id=facts.item_id,
            quantity=facts.quantity,
            location_id=facts.location_id,
            date=facts.on,
            memo=facts.memo,
            subsidiary_id=facts.subsidiary_id,
        )

    def cells(self, row: AdjustmentRow) -> tuple[str, ...]:
        reference = neutralise_text(row.reference_no)
        return (
            reference,
            row.adjustment_account_id,
            row.item_id,
            quantity_cell(row.quantity),
            row.location_id,
            date_cell(row.date),
            memo_cell(row.memo),
            row.subsidiary_id,
            reference,
        )


ADJUSTMENT = AdjustmentFeed(
    name="inventoryadjustment",
    import_map="custimport_inventoryadjustment_hc",
    file_label="InventoryAdjustmentFeed",
    header=(
        "Reference No",
        "Adjustment Account",
        "Item",
        "Adjust Qty By",
        "Location",
        "Date",
        "Memo",
        "Subsidiary",
        "HC Inventory Adj Id",
    ),
    columns=Columns(
        reference="Reference No",
        item="Item",
        quantity="Adjust Qty By",
        location="Location",
        date="Date",
        memo="Memo",
        ids=("Adjustment Account", "Item", "Location", "Subsidiary"),
        echoes=(("HC Inventory Adj Id", "Reference No"),),
    ),
    record=NetSuiteRecord.ADJUSTMENT,
    row_type=AdjustmentRow,
    kinds=frozenset({EventKind.COUNT_APPROVED, EventKind.VARIANCE_LOGGED}),
    # Last: it takes whatever a more particular feed leaves.
    precedence=100,
)
