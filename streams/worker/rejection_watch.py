"""Looks at NetSuite's `failed/` and `error/` folders now and then, for `/rejections`, the
console and a metric (DESIGN section 5: "watch failed/ and error/")."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feeds import FEEDS
from sinks.rejections import Rejection, RejectionReader
from streams import metrics

log = logging.getLogger(__name__)


class RejectionWatch:
    def __init__(self, dest: Destination, interval: float = 30.0) -> None:
        self._reader = RejectionReader(dest)
        self._interval = interval
        self.rejections: list[Rejection] | None = None  # None until the first look
        self.checked_at: float | None = None
        self.error: str | None = None

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> None:
        try:
            found = await self._reader.read()
        except SinkError as exc:
            # The publish loop reports the outage; this view only says it is stale.
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.rejections, self.checked_at, self.error = found, time.time(), None
        for feed in FEEDS:
            metrics.NETSUITE_REJECTED.labels(feed.name).set(
                sum(1 for r in found if r.feed == feed.name)
            )

    def to_json(self) -> dict[str, Any]:
        rejections = None
        if self.rejections is not None:
            rejections = [
                {**asdict(r), "batch_at": r.batch_at.isoformat() if r.batch_at else None}
                for r in self.rejections
            ]
        return {"checked_at": self.checked_at, "error": self.error, "rejections": rejections}
