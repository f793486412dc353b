"""Rows waiting for their batch. The rows themselves are each feed's (`sinks.feeds`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sinks.feeds.spec import FeedRow


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A row waiting for its batch, with the source offset it came from."""

    offset: int
    row: FeedRow
    # The source record's timestamp: names sort by it, and it is the same on every rebuild.
    record_at: datetime
    schema_version: str
