"""LocalDestination: error mapping, durability calls and path checks.

The shared contract (rename semantics, list_dir, ...) is in
tests/integration/test_destination_contract.py; errors a test cannot cause for real (a full
disk, a dead mount) are injected here by replacing the `os` call that would fail.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sinks.exceptions import DestinationRefused, DestinationUnavailable
from sinks.layout import ensure_layout, netsuite_tree
from sinks.local import LocalDestination


@pytest.fixture
def dest(tmp_path: Path) -> LocalDestination:
    root = tmp_path / "netsuite"
    root.mkdir()
    return LocalDestination(root)


def _failing(code: int) -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)

    return fail


async def test_a_missing_root_is_unavailable_and_never_created(tmp_path: Path) -> None:
    root = tmp_path / "unmounted"
    dest = LocalDestination(root)
    for call in (
        dest.connect,
        lambda: dest.makedirs("inventoryadjustment/csv"),
        lambda: dest.exists("inventoryadjustment/csv/a.csv"),
        lambda: dest.read("a.csv"),
        lambda: dest.size("a.csv"),
        lambda: dest.list_dir("inventoryadjustment/csv"),
        lambda: dest.write("a.csv", b"1"),
    ):
        with pytest.raises(DestinationUnavailable, match=str(root)):
            await call()
    assert not root.exists()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EACCES, DestinationRefused),
        (errno.EPERM, DestinationRefused),
        (errno.ENOSPC, DestinationRefused),
        (errno.EDQUOT, DestinationRefused),
        (errno.EROFS, DestinationRefused),
        (errno.EIO, DestinationUnavailable),
        (errno.ESTALE, DestinationUnavailable),
        (errno.ENOTCONN, DestinationUnavailable),
    ],
)
async def test_os_errors_are_mapped_and_name_the_path(
    dest: LocalDestination,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    expected: type[Exception],
) -> None:
    await dest.write("ledger.tmp", b"1")
    monkeypatch.setattr(os, "replace", _failing(code))
    with pytest.raises(expected) as caught:
        await dest.rename_replace("ledger.tmp", "ledger")
    assert str(dest.root / "ledger.tmp") in str(caught.value)
    assert os.strerror(code) in str(caught.value)


async def test_a_full_disk_at_fsync_is_refused(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", _failing(errno.ENOSPC))
    with pytest.raises(DestinationRefused, match=r"a\.csv"):
        await dest.write("a.csv", b"1")


async def test_write_and_renames_are_fsynced(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    await dest.makedirs("csv")
    await dest.write("a.tmp", b"1")
    assert synced == [str(dest.root / "a.tmp")]
    await dest.rename_noreplace("a.tmp", "csv/a.csv")
    await dest.write("b.tmp", b"2")
    await dest.rename_replace("b.tmp", "csv/b.csv")
    # The folder that gained the name is synced, so the rename survives a crash.
    assert synced[1:] == [str(dest.root / "csv"), str(dest.root / "b.tmp"), str(dest.root / "csv")]


async def test_rename_noreplace_is_a_hard_link_that_refuses_existing_names(
    dest: LocalDestination,
) -> None:
    await dest.write("new.csv", b"new")
    await dest.write("taken.csv", b"old")
    assert await dest.rename_noreplace("new.csv", "taken.csv") is False
    assert (dest.root / "new.csv").read_bytes() == b"new"
    assert (dest.root / "taken.csv").read_bytes() == b"old"


async def test_rename_noreplace_without_hard_links_is_refused_and_keeps_the_source(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some mounted filesystems cannot hard-link; no-replace cannot be honoured there.
    await dest.write("new.csv", b"new")
    monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    with pytest.raises(DestinationRefused, match=r"new\.csv"):
        await dest.rename_noreplace("new.csv", "free.csv")
    assert (dest.root / "new.csv").read_bytes() == b"new"
    assert not (dest.root / "free.csv").exists()


async def test_exists_reports_errors_instead_of_absence(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Not there" would let a publisher publish a batch twice.
    await dest.write("a.csv", b"1")
    real_stat = Path.stat

    def stat(path: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        if path.name == "a.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(DestinationRefused, match=r"a\.csv"):
        await dest.exists("a.csv")
    with pytest.raises(DestinationRefused, match=r"a\.csv"):
        await dest.size("a.csv")


async def test_missing_files_are_absent_not_errors(dest: LocalDestination) -> None:
    await dest.write("file", b"1")
    assert await dest.exists("nothing") is False
    assert await dest.exists("file/below-a-file") is False
    assert await dest.read("nothing") is None
    assert await dest.size("nothing") is None
    assert await dest.list_dir("nothing") == []
    await dest.remove("nothing")


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../x", "/etc/passwd", "a\x00b"])
async def test_paths_outside_the_root_are_rejected_before_any_io(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setattr(os, "link", _failing(errno.EIO))
    with pytest.raises(ValueError, match="path"):
        await dest.write(bad, b"x")
    with pytest.raises(ValueError, match="path"):
        await dest.rename_noreplace("a", bad)
    assert list(dest.root.parent.iterdir()) == [dest.root]


async def test_ensure_layout_is_idempotent(dest: LocalDestination) -> None:
    await ensure_layout(dest)
    await dest.write("inventoryadjustment/csv/kept.csv", b"1")
    await ensure_layout(dest)
    assert all((dest.root / folder).is_dir() for folder in netsuite_tree())
    assert await dest.list_dir("inventoryadjustment/csv") == ["kept.csv"]
    assert len(netsuite_tree()) == 12


def test_description_names_the_folder(dest: LocalDestination) -> None:
    assert dest.description == f"local:{dest.root}"
