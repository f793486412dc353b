"""The publish protocol on a local folder, including a crash between every pair of steps."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sinks.exceptions import LedgerConflict, Superseded
from sinks.feed_publisher import FeedPublisher, PublisherOptions
from sinks.feeds import ADJUSTMENT, AdjustmentRow, AnyFeed
from sinks.layout import ensure_layout
from sinks.local import LocalDestination
from sinks.rows import PendingRow
from sinks.seal_ledger import PUBLISHED_SUFFIX, SEAL_SUFFIX, BatchLedger, ledger_dir
from sinks.source_partition import SourcePartition

SOURCE = SourcePartition("hotwax.inventory.count-approved", 2)
OPTIONS = PublisherOptions(file_prefix="acme", max_rows=3)
AT = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)


class Crash(Exception):
    """Stands in for SIGKILL: nothing after the fault point runs."""


def rows(*offsets: int) -> list[PendingRow]:
    return [
        PendingRow(
            offset,
            AdjustmentRow(
                f"CC{offset}-1", "927", "3410", -offset, "254", date(2024, 2, 29), "memo", "1"
            ),
            AT,
            "CountApproved.v2",
        )
        for offset in offsets
    ]


@pytest.fixture
async def dest(tmp_path: Path) -> LocalDestination:
    destination = LocalDestination(tmp_path)
    await ensure_layout(destination)
    return destination


def publisher(dest: LocalDestination, crash_at: str | None = None) -> FeedPublisher:
    async def faults(step: str) -> None:
        if step == crash_at:
            raise Crash(step)

    return FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=faults)


def published_refs(root: Path) -> list[str]:
    """Reference Nos in every file NetSuite could ever import: csv/, archive/, failed/."""
    refs = []
    for folder in ("csv", "archive", "failed"):
        for path in sorted((root / "inventoryadjustment" / folder).glob("*.csv")):
            reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
            refs += [row["Reference No"] for row in reader]
    return refs


def csv_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "inventoryadjustment" / "csv").glob("*.csv"))


async def test_a_batch_is_published_once_with_a_name_from_its_offsets(
    dest: LocalDestination,
) -> None:
    result = await publisher(dest).flush(rows(3, 5), consumed_through=7)
    assert result.done_through == 7
    assert csv_names(dest.root) == [
        "acme_InventoryAdjustmentFeed_2024-02-29-18_00_00_000_count-approved-p2_000000000000-000000000007.csv"
    ]
    assert published_refs(dest.root) == ["CC3-1", "CC5-1"]
    assert not list((dest.root / "inventoryadjustment" / ".staging").iterdir())


async def test_rows_above_the_row_limit_are_split_into_parts(dest: LocalDestination) -> None:
    result = await publisher(dest).flush(rows(1, 2, 3, 4, 5, 6, 7), consumed_through=9)
    assert len(result.published) == 3
    assert [name.rsplit("_", 1)[1] for name in csv_names(dest.root)] == [
        "part1of3.csv",
        "part2of3.csv",
        "part3of3.csv",
    ]
    assert published_refs(dest.root) == [f"CC{i}-1" for i in range(1, 8)]


async def test_the_next_batch_starts_after_the_last_seal(dest: LocalDestination) -> None:
    await publisher(dest).flush(rows(3), consumed_through=4)
    result = await publisher(dest).flush(rows(3, 6), consumed_through=8)
    assert result.done_through == 8
    assert published_refs(dest.root) == ["CC3-1", "CC6-1"]
    assert csv_names(dest.root)[1].endswith("_000000000005-000000000008.csv")


async def test_replaying_published_offsets_publishes_nothing(dest: LocalDestination) -> None:
    await publisher(dest).flush(rows(3, 5), consumed_through=7)
    for path in (dest.root / "inventoryadjustment" / "csv").iterdir():
        path.rename(
            dest.root / "inventoryadjustment" / "archive" / path.name
        )  # NetSuite imported it
    result = await publisher(dest).flush(rows(3, 5), consumed_through=7)
    assert result.published == ()
    assert result.done_through == 7
    assert published_refs(dest.root) == ["CC3-1", "CC5-1"]


@pytest.mark.parametrize("step", ["staged", "promoted", "recorded"])
async def test_a_crash_at_any_step_is_finished_by_the_successor_exactly_once(
    dest: LocalDestination, step: str
) -> None:
    with pytest.raises(Crash):
        await publisher(dest, crash_at=step).flush(rows(1, 2, 3, 4), consumed_through=5)
    # The successor consumes again from the committed offset, and further: it has seen more.
    result = await publisher(dest).flush(rows(1, 2, 3, 4, 8), consumed_through=9)
    assert published_refs(dest.root) == ["CC1-1", "CC2-1", "CC3-1", "CC4-1", "CC8-1"]
    assert result.done_through == 9
    names = csv_names(dest.root)
    assert sum("_000000000000-000000000005" in name for name in names) == 2  # as sealed: 2 parts


async def test_uploads_left_by_interrupted_attempts_are_swept_later(
    dest: LocalDestination,
) -> None:
    staging = dest.root / "inventoryadjustment" / ".staging"
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1), consumed_through=1)
    await publisher(dest).flush(rows(1), consumed_through=1)
    # Left while its own seal completes: a stalled publisher of it may still verify it.
    left = [p.name for p in staging.iterdir()]
    assert len(left) == 1
    assert left[0].endswith(".part")
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 3), consumed_through=3)
    await publisher(dest).flush(rows(1, 3), consumed_through=3)
    # The next recovery sweeps what earlier seals left, not its own seal's upload.
    assert [p.name for p in staging.iterdir()] != left
    assert len(list(staging.iterdir())) == 1
    assert published_refs(dest.root) == ["CC1-1", "CC3-1"]


async def test_a_crash_after_a_file_was_archived_does_not_import_it_again(
    dest: LocalDestination,
) -> None:
    with pytest.raises(Crash):
        await publisher(dest, crash_at="promoted").flush(rows(1), consumed_through=1)
    for path in (dest.root / "inventoryadjustment" / "csv").iterdir():
        path.rename(dest.root / "inventoryadjustment" / "archive" / path.name)
    result = await publisher(dest).flush(rows(1), consumed_through=1)
    assert result.already_present
    assert not result.published
    assert published_refs(dest.root) == ["CC1-1"]


async def test_a_sealed_batch_waits_until_its_rows_are_consumed_again(
    dest: LocalDestination,
) -> None:
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 6), consumed_through=6)
    waiting = await publisher(dest).flush(rows(1), consumed_through=2)
    assert waiting.waiting_for == 6
    assert waiting.done_through == -1
    assert published_refs(dest.root) == []
    done = await publisher(dest).flush(rows(1, 6), consumed_through=6)
    assert done.done_through == 6
    assert published_refs(dest.root) == ["CC1-1", "CC6-1"]


async def test_two_workers_racing_for_one_partition_publish_one_batch(
    dest: LocalDestination,
) -> None:
    # A stalled former owner sealed 0-3; the new owner has consumed through 6.
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 3), consumed_through=3)
    result = await publisher(dest).flush(rows(1, 3, 5), consumed_through=6)
    assert result.done_through == 6
    assert published_refs(dest.root) == ["CC1-1", "CC3-1", "CC5-1"]
    assert [n.split("_count-approved-p2_")[1] for n in csv_names(dest.root)] == [
        "000000000000-000000000003.csv",
        "000000000004-000000000006.csv",
    ]


async def test_a_rebuild_with_other_rows_than_sealed_stops_with_a_clear_error(
    dest: LocalDestination,
) -> None:
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 2), consumed_through=2)
    with pytest.raises(LedgerConflict, match="sealed with 2 rows but rebuild to 1"):
        await publisher(dest).flush(rows(1), consumed_through=2)


async def test_a_rebuild_with_as_many_rows_but_other_ones_is_refused(
    dest: LocalDestination,
) -> None:
    # A routing change moved one row out of this feed and another in: the count holds,
    # and publishing would import one row twice (it went out in the other feed) and lose
    # the other.
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 2), consumed_through=2)
    other = [rows(1)[0], replace(rows(3)[0], offset=2)]
    with pytest.raises(LedgerConflict, match="was sealed with other rows"):
        await publisher(dest).flush(other, consumed_through=2)
    assert published_refs(dest.root) == []


async def test_a_rebuild_of_the_same_rows_rendered_anew_is_published(
    dest: LocalDestination,
) -> None:
    with pytest.raises(Crash):
        await publisher(dest, crash_at="staged").flush(rows(1, 2), consumed_through=2)
    first, second = rows(1, 2)
    assert isinstance(second.row, AdjustmentRow)
    anew = replace(second, row=replace(second.row, memo="another memo"))
    result = await publisher(dest).flush([first, anew], consumed_through=2)
    assert result.done_through == 2
    assert published_refs(dest.root) == ["CC1-1", "CC2-1"]


async def test_nothing_to_publish_reports_everything_consumed_as_done(
    dest: LocalDestination,
) -> None:
    result = await publisher(dest).flush([], consumed_through=12)
    assert result.done_through == 12
    assert not (dest.root / "variance-sync" / "ledger" / "inventoryadjustment").exists()


async def test_the_manifest_records_the_batch(dest: LocalDestination) -> None:
    await publisher(dest).flush(rows(3, 5), consumed_through=7)
    manifests = list(
        (dest.root / "variance-sync" / "manifests" / "inventoryadjustment").glob("*.json")
    )
    assert len(manifests) == 1
    text = manifests[0].read_text(encoding="utf-8")
    for expected in (
        '"row_count": 2',
        '"254": -8',
        '"start": 0',
        '"end": 7',
        "CountApproved.v2",
        "published_at",
    ):
        assert expected in text


async def test_old_published_batches_leave_the_ledger_and_the_head_stays(
    dest: LocalDestination,
) -> None:
    ledger = BatchLedger(dest, keep=2, prune_every=3)
    flush = FeedPublisher(ADJUSTMENT, SOURCE, dest, ledger, OPTIONS).flush
    folder = dest.root / ledger_dir(ADJUSTMENT, SOURCE)

    def seals() -> list[int]:
        return sorted(int(p.name.split(".")[0]) for p in folder.glob(f"*{SEAL_SUFFIX}"))

    for offset in range(5):
        await flush(rows(offset), consumed_through=offset)
    assert seals() == [1, 2, 3, 4]  # pruned to two after the third batch only
    await flush(rows(5), consumed_through=5)
    assert seals() == [4, 5]
    for offset in range(6, 9):
        await flush(rows(offset), consumed_through=offset)
    assert seals() == [7, 8]
    assert len(list(folder.glob(f"*{PUBLISHED_SUFFIX}"))) == 2
    assert len(published_refs(dest.root)) == 9  # the audit manifests and files all stay


class PausedBeforeClaim(BatchLedger):
    """A ledger whose next claim waits until `go` is set, as a publisher paused between
    reading the head and claiming the next start would."""

    def __init__(self, dest: LocalDestination) -> None:
        super().__init__(dest)
        self.go = asyncio.Event()

    async def claim(self, feed: AnyFeed, source: SourcePartition, manifest: dict[str, Any]) -> Any:
        await self.go.wait()
        return await super().claim(feed, source, manifest)


async def test_a_publisher_paused_before_its_claim_cannot_reopen_a_pruned_batch(
    dest: LocalDestination,
) -> None:
    stale = PausedBeforeClaim(dest)
    zombie = FeedPublisher(ADJUSTMENT, SOURCE, dest, stale, OPTIONS)
    paused = asyncio.create_task(zombie.flush(rows(0), consumed_through=0))
    await asyncio.sleep(0.05)  # it read an empty ledger, and stopped
    ledger = BatchLedger(dest, keep=2, prune_every=1)
    successor = FeedPublisher(ADJUSTMENT, SOURCE, dest, ledger, OPTIONS)
    for offset in range(5):
        await successor.flush(rows(offset), consumed_through=offset)
    folder = dest.root / ledger_dir(ADJUSTMENT, SOURCE)
    assert not (folder / f"{0:020d}{SEAL_SUFFIX}").exists()  # pruned: the name is free
    stale.go.set()
    with pytest.raises(Superseded):
        await paused
    assert not (folder / f"{0:020d}{SEAL_SUFFIX}").exists()  # the stale claim is withdrawn
    assert published_refs(dest.root) == [f"CC{n}-1" for n in range(5)]


def pausing(at: str) -> tuple[asyncio.Event, asyncio.Event, Any]:
    """A fault hook that stops at step `at` (once) until released."""
    reached, release = asyncio.Event(), asyncio.Event()

    async def faults(step: str) -> None:
        if step == at and not reached.is_set():
            reached.set()
            await release.wait()

    return reached, release, faults


async def test_a_publisher_paused_before_its_rename_cannot_land_a_file_twice(
    dest: LocalDestination,
) -> None:
    reached, release, faults = pausing("promoting")
    zombie = FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=faults)
    paused = asyncio.create_task(zombie.flush(rows(1), consumed_through=1))
    await asyncio.wait_for(reached.wait(), 5)  # its upload is named to be promoted
    result = await publisher(dest).flush(rows(1), consumed_through=1)
    assert result.published  # the successor promoted the zombie's verified upload
    netsuite_imports(dest.root)  # and NetSuite took it from csv/ to archive/
    release.set()
    late = await paused
    assert late.already_present
    assert published_refs(dest.root) == ["CC1-1"]
    staging = dest.root / "inventoryadjustment" / ".staging"
    assert list(staging.iterdir()) == []


async def test_a_promotion_claimed_after_its_batch_was_pruned_is_superseded(
    dest: LocalDestination,
) -> None:
    reached, release, faults = pausing("staged")
    zombie = FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=faults)
    paused = asyncio.create_task(zombie.flush(rows(0), consumed_through=0))
    await asyncio.wait_for(reached.wait(), 5)
    ledger = BatchLedger(dest, keep=2, prune_every=1)
    successor = FeedPublisher(ADJUSTMENT, SOURCE, dest, ledger, OPTIONS)
    for offset in range(5):
        await successor.flush(rows(offset), consumed_through=offset)
    netsuite_imports(dest.root)
    for path in (dest.root / "inventoryadjustment" / "archive").glob("*-000000000000.csv"):
        path.unlink()  # the server's own retention cleaned archive/ meanwhile
    release.set()
    with pytest.raises(Superseded):
        await paused
    assert published_refs(dest.root) == [f"CC{n}-1" for n in range(1, 5)]
    assert not list((dest.root / "inventoryadjustment" / "csv").iterdir())


def netsuite_imports(root: Path) -> None:
    """NetSuite's scheduled script: every file in csv/ goes to archive/."""
    for path in (root / "inventoryadjustment" / "csv").iterdir():
        path.rename(root / "inventoryadjustment" / "archive" / path.name)


class KilledMidRename(Exception):
    """SIGKILL between a rename's link and its unlink."""


class HalfRename(LocalDestination):
    """Links a staged upload into csv/, then dies before unlinking it (a server that
    renames by link and unlink, killed between the two)."""

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        if "/csv/" not in dst:
            return await super().rename_noreplace(src, dst)
        (self.root / dst).hardlink_to(self.root / src)
        raise KilledMidRename(dst)


class PausedAt:
    def __init__(self, step: str) -> None:
        self.step = step
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, step: str) -> None:
        if step == self.step:
            self.reached.set()
            await self.go.wait()


async def test_a_paused_publisher_never_lands_a_file_netsuite_has_moved_away(
    dest: LocalDestination,
) -> None:
    # Z is paused just before renaming the upload the ledger promotes; W1 renames that
    # same upload and dies halfway (linked, not unlinked); W2 finds the file, records the
    # batch, and NetSuite archives it. Z wakes up: the file must not land in csv/ again.
    paused = PausedAt("promoting")
    zombie = FeedPublisher(ADJUSTMENT, SOURCE, dest, BatchLedger(dest), OPTIONS, faults=paused)
    frozen = asyncio.create_task(zombie.flush(rows(1, 2), consumed_through=2))
    await paused.reached.wait()
    half = HalfRename(dest.root)
    with pytest.raises(KilledMidRename):
        await FeedPublisher(ADJUSTMENT, SOURCE, half, BatchLedger(half), OPTIONS).flush(
            rows(1, 2), consumed_through=2
        )
    assert (await publisher(dest).flush(rows(1, 2), consumed_through=2)).done_through == 2
    for path in (dest.root / "inventoryadjustment" / "csv").iterdir():
        path.rename(dest.root / "inventoryadjustment" / "archive" / path.name)
    paused.go.set()
    await frozen
    assert published_refs(dest.root) == ["CC1-1", "CC2-1"]
    assert csv_names(dest.root) == []
