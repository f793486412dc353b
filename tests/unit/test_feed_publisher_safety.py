"""The publisher never deletes or overwrites anything NetSuite owns (archive/, failed/,
error/), whatever state it finds: every mutating call is recorded and checked."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from sinks.feed_publisher import FeedPublisher
from sinks.feeds import ADJUSTMENT, FEEDS
from sinks.layout import ensure_layout
from sinks.local import LocalDestination
from sinks.seal_ledger import BatchLedger
from tests.unit.test_feed_publisher import OPTIONS, SOURCE, Crash, rows

NETSUITE_OWNED = ("archive/", "failed/", "error/")


class Recording(LocalDestination):
    """A local destination that remembers every path a call could change."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.changed: list[str] = []

    async def write(self, path: str, data: bytes) -> None:
        self.changed.append(path)
        await super().write(path, data)

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        self.changed += [src, dst]
        return await super().rename_noreplace(src, dst)

    async def rename_replace(self, src: str, dst: str) -> None:
        self.changed += [src, dst]
        await super().rename_replace(src, dst)

    async def remove(self, path: str) -> None:
        self.changed.append(path)
        await super().remove(path)


def owned_by_netsuite(path: str) -> bool:
    return any(f"{feed.name}/{folder}" in path for feed in FEEDS for folder in NETSUITE_OWNED)


@pytest.mark.parametrize("crash_at", [None, "staged", "promoted", "recorded"])
async def test_netsuite_folders_are_never_written(tmp_path: Path, crash_at: str | None) -> None:
    dest = Recording(tmp_path)
    await ensure_layout(dest)

    async def faults(step: str) -> None:
        if step == crash_at:
            raise Crash(step)

    first = FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=faults)
    with contextlib.suppress(Crash):
        await first.flush(rows(1, 2, 3, 4), consumed_through=4)
    # NetSuite imports what is there, and a replay rebuilds everything.
    for path in (tmp_path / "inventoryadjustment" / "csv").iterdir():
        path.rename(tmp_path / "inventoryadjustment" / "archive" / path.name)
    (tmp_path / "inventoryadjustment" / "error" / "x_error.csv").write_text(
        "fileName,errorMessage\n"
    )
    again = FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS)
    await again.flush(rows(1, 2, 3, 4, 7), consumed_through=9)
    assert dest.changed
    assert not [path for path in dest.changed if owned_by_netsuite(path)]
