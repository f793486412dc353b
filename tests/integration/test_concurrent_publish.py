"""Two publishers completing the same seal at the same time, against OpenSSH's sshd: a
zombie paused between its upload and its rename, and its successor. `csv/` never holds a
partial or wrong file, and the batch is published once."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sinks.csv_render import render
from sinks.feed_publisher import FeedPublisher, PublisherOptions
from sinks.feeds import ADJUSTMENT, AdjustmentRow
from sinks.layout import ensure_layout
from sinks.rows import PendingRow
from sinks.seal_ledger import BatchLedger
from sinks.sftp import SFTPDestination
from sinks.source_partition import SourcePartition
from tests.fixtures.sshd import SSHDServer

SOURCE = SourcePartition("hotwax.inventory.count-approved", 1)
OPTIONS = PublisherOptions(file_prefix="acme", max_rows=1000)
AT = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)
ROWS = [
    PendingRow(
        n, AdjustmentRow(f"CC{n}-1", "927", "3410", -n, "254", date(2024, 2, 29), "m", "1"), AT, "v"
    )
    for n in range(1, 400)
]


class Paused:
    """A fault hook that holds its publisher after the upload until released."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, step: str) -> None:
        if step == "staged" and not self.reached.is_set():
            self.reached.set()
            await self.release.wait()


def publisher(dest: SFTPDestination, hook: Paused | None = None) -> FeedPublisher:
    faults = hook or Paused()
    if hook is None:
        faults.reached.set()  # never pauses
    return FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=faults)


def files(root: Path, folder: str) -> list[Path]:
    return sorted((root / "inventoryadjustment" / folder).iterdir())


async def race(sshd: SSHDServer, root: Path, base: str, between: Sequence[str]) -> None:
    zombie_dest = SFTPDestination(sshd.params_for(base))
    successor_dest = SFTPDestination(sshd.params_for(base))
    try:
        await ensure_layout(zombie_dest)
        hook = Paused()
        zombie = asyncio.create_task(publisher(zombie_dest, hook).flush(ROWS, 399))
        await asyncio.wait_for(hook.reached.wait(), 30)
        # The zombie has sealed and uploaded, and stalls before its rename. Its successor
        # adopts the seal and publishes the same batch from its own re-consumed rows.
        result = await publisher(successor_dest).flush(ROWS, 399)
        assert len(result.published) == 1
        if "archive" in between:
            for path in files(root, "csv"):  # NetSuite imports it meanwhile
                shutil.move(path, root / "inventoryadjustment" / "archive" / path.name)
        hook.release.set()
        late = await asyncio.wait_for(zombie, 30)
        assert late.published == ()
        assert len(late.already_present) == 1
    finally:
        await zombie_dest.close()
        await successor_dest.close()


@pytest.mark.parametrize("between", [(), ("archive",)])
def test_a_zombie_and_its_successor_publish_one_seal_once(
    sshd: SSHDServer, between: Sequence[str]
) -> None:
    base = f"race-{uuid.uuid4().hex[:8]}"
    root = sshd.root / base
    root.mkdir()
    asyncio.run(race(sshd, root, base, between))
    landed = files(root, "archive" if between else "csv")
    others = files(root, "csv" if between else "archive")
    assert len(landed) == 1
    assert others == []
    assert landed[0].read_bytes() == render(ADJUSTMENT, [row.row for row in ROWS])
    assert files(root, ".staging") == []
