"""The Destination contract against a local folder, asyncssh's SFTP server and OpenSSH.

The same tests run on all three, so the publisher can rely on one set of semantics.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable

import pytest

from sinks.exceptions import DestinationRefused
from sinks.feeds import TRANSFER
from sinks.layout import ensure_layout, netsuite_tree
from sinks.rejections import RejectionReader
from streams.netsuite.import_rules import render_errors

# Every byte value, and more than one SFTP read/write request's worth.
from tests.fixtures.sites import PAYLOAD, Site, read_only

# The contract, on every destination.


async def test_makedirs_is_idempotent(site: Site) -> None:
    await site.dest.makedirs("a/b/c")
    await site.dest.makedirs("a/b/c")
    await site.dest.makedirs("a")
    assert (site.path / "a/b/c").is_dir()


async def test_a_folder_removed_behind_its_back_is_made_again(site: Site) -> None:
    await site.dest.makedirs("a/b")
    shutil.rmtree(site.path / "a")
    with pytest.raises(DestinationRefused):
        await site.dest.write("a/b/f.csv", b"x")
    await site.dest.makedirs("a/b")
    await site.dest.write("a/b/f.csv", b"x")
    assert (site.path / "a" / "b" / "f.csv").read_bytes() == b"x"


async def test_ensure_layout_creates_the_netsuite_tree(site: Site) -> None:
    await ensure_layout(site.dest)
    await ensure_layout(site.dest)
    for folder in netsuite_tree():
        assert (site.path / folder).is_dir(), folder
    assert {"inventoryadjustment/csv", "inventorytransfer/.staging"} <= set(netsuite_tree())
    assert {"variance-sync/ledger", "variance-sync/manifests"} <= set(netsuite_tree())


async def test_write_read_size_exists(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("d")
    assert await dest.read("d/f") is None
    assert await dest.size("d/f") is None
    assert await dest.exists("d/f") is False

    await dest.write("d/f", PAYLOAD)
    assert await dest.read("d/f") == PAYLOAD
    assert await dest.size("d/f") == len(PAYLOAD)
    assert await dest.exists("d/f") is True
    assert (site.path / "d/f").read_bytes() == PAYLOAD

    await dest.write("d/f", b"short")
    assert await dest.read("d/f") == b"short"
    assert await dest.size("d/f") == 5


async def test_list_dir_gives_regular_files_only(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("csv/sub")
    await dest.write("csv/b.csv", b"2")
    await dest.write("csv/a.csv", b"1")
    (site.path / "csv/link.csv").symlink_to(site.path / "csv/a.csv")

    assert await dest.list_dir("csv") == ["a.csv", "b.csv"]
    assert await dest.list_dir("csv/sub") == []
    assert await dest.list_dir("missing") == []


async def test_rename_noreplace_leaves_both_files_when_target_exists(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("stage")
    await dest.makedirs("csv")
    await dest.write("stage/f.csv", b"new")
    await dest.write("csv/f.csv", b"old")

    assert await dest.rename_noreplace("stage/f.csv", "csv/f.csv") is False
    assert await dest.read("stage/f.csv") == b"new"
    assert await dest.read("csv/f.csv") == b"old"


async def test_rename_noreplace_moves_when_target_is_free(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("stage")
    await dest.makedirs("csv")
    await dest.write("stage/f.csv", b"new")

    assert await dest.rename_noreplace("stage/f.csv", "csv/f.csv") is True
    assert await dest.read("csv/f.csv") == b"new"
    assert await dest.exists("stage/f.csv") is False


async def test_rename_replace_replaces(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("state")
    await dest.write("state/ledger.tmp", b"v2")
    await dest.write("state/ledger", b"v1")
    await dest.rename_replace("state/ledger.tmp", "state/ledger")
    assert await dest.read("state/ledger") == b"v2"
    assert await dest.exists("state/ledger.tmp") is False

    await dest.write("state/other.tmp", b"v1")
    await dest.rename_replace("state/other.tmp", "state/other")
    assert await dest.read("state/other") == b"v1"


async def test_remove_is_fine_with_missing_files(site: Site) -> None:
    dest = site.dest
    await dest.remove("missing.csv")
    await dest.remove("no/such/folder.csv")
    await dest.write("f.csv", b"1")
    await dest.remove("f.csv")
    assert await dest.exists("f.csv") is False


@pytest.mark.parametrize("bad", ["../escape", "a/../../escape", "/etc/passwd", "a/..", "a\x00b"])
async def test_paths_outside_the_root_are_rejected(site: Site, bad: str) -> None:
    dest = site.dest
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: dest.makedirs(bad),
        lambda: dest.list_dir(bad),
        lambda: dest.exists(bad),
        lambda: dest.read(bad),
        lambda: dest.size(bad),
        lambda: dest.write(bad, b"x"),
        lambda: dest.rename_noreplace("ok", bad),
        lambda: dest.rename_noreplace(bad, "ok"),
        lambda: dest.rename_replace("ok", bad),
        lambda: dest.rename_replace(bad, "ok"),
        lambda: dest.remove(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="path"):
            await call()
    assert not (site.path.parent / "escape").exists()


async def test_a_file_where_a_folder_should_be_is_refused(site: Site) -> None:
    # Works as root too, unlike permission bits; every server reports it as a refusal.
    dest = site.dest
    await dest.write("csv", b"not a folder")
    calls: list[Callable[[], Awaitable[None]]] = [
        lambda: dest.makedirs("csv"),
        lambda: dest.makedirs("csv/sub"),
        lambda: dest.write("csv/x.csv", b"1"),
    ]
    for call in calls:
        with pytest.raises(DestinationRefused) as caught:
            await call()
        assert caught.value.retriable is True


async def test_a_read_only_folder_is_refused(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("csv")
    await dest.makedirs("stage")
    await dest.write("stage/f.csv", b"1")
    with read_only(site.path / "csv"):
        with pytest.raises(DestinationRefused, match=r"x\.csv"):
            await dest.write("csv/x.csv", b"1")
        with pytest.raises(DestinationRefused):
            await dest.rename_noreplace("stage/f.csv", "csv/f.csv")
        with pytest.raises(DestinationRefused):
            await dest.rename_replace("stage/f.csv", "csv/f.csv")
    assert await dest.read("stage/f.csv") == b"1"
    assert await dest.list_dir("csv") == []


# SFTP only: host keys, authentication, outages.


async def test_netsuite_s_rejections_read_the_same_on_every_destination(site: Site) -> None:
    await ensure_layout(site.dest)
    feed = TRANSFER
    (site.path / feed.failed_dir / "b.csv").write_bytes(b"rows")
    error = site.path / feed.error_dir / "b_error.csv"
    error.write_bytes(render_errors("b.csv", ["Invalid item 3410"]))
    reader = RejectionReader(site.dest)
    (found,) = await reader.read()
    assert (found.feed, found.file, found.in_failed, found.errors) == (
        feed.name,
        "b.csv",
        True,
        ("Invalid item 3410",),
    )
    error.write_bytes(render_errors("b.csv", ["Invalid item 3410", "Inactive location"]))
    assert (await reader.read())[0].errors == ("Invalid item 3410", "Inactive location")
