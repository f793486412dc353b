"""NetSuite feeds: one spec per feed (`adjustment.py`, `transfer.py`) and the registry."""

from sinks.feeds.adjustment import ADJUSTMENT, AdjustmentRow
from sinks.feeds.registry import FeedRegistry
from sinks.feeds.spec import (
    FEED_SUBDIRS,
    STATE_DIR,
    AnyFeed,
    Columns,
    FeedExport,
    FeedRow,
    FeedSpec,
    NetSuiteRecord,
    RowFacts,
)
from sinks.feeds.transfer import TRANSFER, TransferRow

# Every feed this process publishes; register another here (or in a test) to add one.
FEEDS = FeedRegistry(ADJUSTMENT, TRANSFER)

__all__ = [
    "ADJUSTMENT",
    "FEEDS",
    "FEED_SUBDIRS",
    "STATE_DIR",
    "TRANSFER",
    "AdjustmentRow",
    "AnyFeed",
    "Columns",
    "FeedExport",
    "FeedRegistry",
    "FeedRow",
    "FeedSpec",
    "NetSuiteRecord",
    "RowFacts",
    "TransferRow",
]
