"""The two NetSuite feeds and where their files live on the SFTP server."""

from __future__ import annotations

from enum import StrEnum


class Feed(StrEnum):
    """A NetSuite import feed. The value is the feed's folder under the SFTP base dir."""

    ADJUSTMENT = "inventoryadjustment"
    TRANSFER = "inventorytransfer"

    @property
    def import_map(self) -> str:
        """The saved CSV import map that NetSuite's scheduled script runs for this feed."""
        if self is Feed.ADJUSTMENT:
            return "custimport_inventoryadjustment_hc"
        return "custimport_inventory_transfer_hc"

    @property
    def file_label(self) -> str:
        """The feed's word in file names, in the spirit of the OMS's own feed names."""
        if self is Feed.ADJUSTMENT:
            return "InventoryAdjustmentFeed"
        return "InventoryTransferFeed"

    # Folder names below the feed folder. NetSuite reads csv/ and writes the others.
    @property
    def csv_dir(self) -> str:
        return f"{self.value}/csv"

    @property
    def archive_dir(self) -> str:
        return f"{self.value}/archive"

    @property
    def failed_dir(self) -> str:
        return f"{self.value}/failed"

    @property
    def error_dir(self) -> str:
        return f"{self.value}/error"

    @property
    def staging_dir(self) -> str:
        # A sibling of csv/ on the same filesystem, so the final rename is atomic.
        return f"{self.value}/.staging"


FEED_SUBDIRS = ("csv", "archive", "failed", "error", ".staging")

# Our own folder beside the feed folders: batch ledger and audit manifests.
STATE_DIR = "variance-sync"
