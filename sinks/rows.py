"""Feed rows: one NetSuite CSV row each, already in NetSuite's terms (internal ids)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sinks.feeds import Feed


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

    feed = Feed.ADJUSTMENT

    def location_totals(self) -> dict[str, int]:
        return {self.location_id: self.quantity}


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

    feed = Feed.TRANSFER

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"transfer quantity must be positive, got {self.quantity}")

    def location_totals(self) -> dict[str, int]:
        return {self.from_location_id: -self.quantity, self.to_location_id: self.quantity}


FeedRow = AdjustmentRow | TransferRow


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A row waiting for its batch, with the source offset it came from."""

    offset: int
    row: FeedRow
    # The source record's timestamp: names sort by it, and it is the same on every rebuild.
    record_at: datetime
    schema_version: str
