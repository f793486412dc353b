"""A third NetSuite feed that exists only in the tests: damaged stock, in a folder of its own.

The proof that feeds are an open registry (issue 21): this spec is defined here, in no
product module, and registering it is all it takes for `VAR_DAMAGED` variances to leave
the feed they went to before and travel routing, batching, rendering, sealing, publishing,
NetSuite's import and `reconcile` as rows of their own shape.

Run as the CLI with the feed registered, so that a real worker, `netsuite-sim` and
`reconcile` see it: `python -m tests.integration.damage_feed worker --config ...`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from schemas.models import EventKind
from sinks.feeds import FEEDS, Columns, FeedSpec, NetSuiteRecord, RowFacts
from sinks.feeds.cells import date_cell, memo_cell, neutralise_text, quantity_cell
from streams import cli

DAMAGED = "VAR_DAMAGED"


@dataclass(frozen=True, slots=True)
class DamageRow:
    """A damaged-stock write-off: `quantity` is signed, as the store's count changes."""

    reference: str
    store_id: str
    item_id: str
    quantity: int
    day: date
    note: str
    subsidiary_id: str
    account_id: str

    @property
    def booked_location(self) -> str:
        return self.store_id

    def location_totals(self) -> dict[str, int]:
        return {self.store_id: self.quantity}


class DamageFeed(FeedSpec[DamageRow]):
    def claims(self, facts: RowFacts) -> bool:
        # Whatever the config says of the reason's variance location: damage stays put.
        return facts.reason_id == DAMAGED

    def row(self, facts: RowFacts) -> DamageRow:
        return DamageRow(
            reference=facts.reference,
            store_id=facts.location_id,
            item_id=facts.item_id,
            quantity=facts.quantity,
            day=facts.on,
            note=facts.memo,
            subsidiary_id=facts.subsidiary_id,
            account_id=facts.adjustment_account_id,
        )

    def cells(self, row: DamageRow) -> tuple[str, ...]:
        return (
            neutralise_text(row.reference),
            row.store_id,
            row.item_id,
            quantity_cell(row.quantity),
            date_cell(row.day),
            memo_cell(row.note),
            row.subsidiary_id,
            row.account_id,
        )


DAMAGE = DamageFeed(
    name="inventorydamage",
    import_map="custimport_inventorydamage_test",
    file_label="InventoryDamageFeed",
    header=("Damage Ref", "Store", "Item", "Qty", "Day", "Note", "Subsidiary", "Account"),
    columns=Columns(
        reference="Damage Ref",
        item="Item",
        quantity="Qty",
        location="Store",
        date="Day",
        memo="Note",
        ids=("Store", "Item", "Subsidiary", "Account"),
    ),
    record=NetSuiteRecord.ADJUSTMENT,
    row_type=DamageRow,
    kinds=frozenset({EventKind.VARIANCE_LOGGED}),
    # Before the transfer (50) and adjustment (100) feeds, which would take these rows.
    precedence=10,
)


def main(argv: Sequence[str] | None = None) -> int:
    """`variance-sync` with the damage feed registered, as a deployment would register it."""
    FEEDS.register(DAMAGE)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
