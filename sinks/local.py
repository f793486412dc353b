"""A `Destination` on a local folder: for tests, and for hosts that mount the SFTP share."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sinks.exceptions import DestinationRefused, DestinationUnavailable
from sinks.layout import relative_path

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The filesystem answered and said no. Path-shape errors (a file where a folder should
# be) are here too, so that every destination reports them the same way; whatever is
# left (EIO, ESTALE, ENOTCONN from a dead mount) means the folder is not reachable.
_REFUSED_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOTEMPTY,
    }
)


class LocalDestination:
    """Publishes into `root`. Blocking calls run in a worker thread."""

    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        return self._root

    @property
    def description(self) -> str:
        return f"local:{self._root}"

    def __repr__(self) -> str:
        return f"LocalDestination({str(self._root)!r})"

    async def connect(self) -> None:
        await self._run("connect", "", lambda _: None)

    async def close(self) -> None:
        return None

    async def makedirs(self, path: str) -> None:
        await self._run("makedirs", path, lambda p: p.mkdir(parents=True, exist_ok=True))

    async def list_dir(self, path: str) -> list[str]:
        return await self._run("list", path, _regular_files)

    async def exists(self, path: str) -> bool:
        return await self._run("stat", path, lambda p: _stat_or_none(p) is not None)

    async def read(self, path: str) -> bytes | None:
        return await self._run("read", path, _read_or_none)

    async def size(self, path: str) -> int | None:
        def size_of(target: Path) -> int | None:
            st = _stat_or_none(target)
            return None if st is None else st.st_size

        return await self._run("stat", path, size_of)

    async def modified(self, path: str) -> float | None:
        def mtime_of(target: Path) -> float | None:
            st = _stat_or_none(target)
            return None if st is None else st.st_mtime

        return await self._run("stat", path, mtime_of)

    async def write(self, path: str, data: bytes) -> None:
        def write_synced(target: Path) -> None:
            with target.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        await self._run("write", path, write_synced)

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        target = self._resolve(dst)

        def link_then_unlink(source: Path) -> bool:
            # link(2) fails if the new name exists, atomically, which rename(2) cannot
            # promise without renameat2; the same trick OpenSSH's sftp-server uses.
            try:
                os.link(source, target, follow_symlinks=False)
            except OSError:
                if _stat_or_none(target, follow_symlinks=False) is not None:
                    return False
                raise
            source.unlink()
            _fsync_dir(target.parent)
            return True

        return await self._run("rename", src, link_then_unlink, also=dst)

    async def rename_replace(self, src: str, dst: str) -> None:
        target = self._resolve(dst)

        def replace(source: Path) -> None:
            os.replace(source, target)
            _fsync_dir(target.parent)

        await self._run("rename", src, replace, also=dst)

    async def remove(self, path: str) -> None:
        await self._run("remove", path, lambda p: p.unlink(missing_ok=True))

    def _resolve(self, path: str) -> Path:
        return self._root / relative_path(path)

    async def _run(self, op: str, path: str, action: Callable[[Path], T], also: str = "") -> T:
        """Run `action` on the resolved path in a thread, mapping OSError to SinkError."""
        target = self._resolve(path)
        shown = f"{target} -> {self._resolve(also)}" if also else str(target)

        def guarded() -> T:
            # Without this check a missing (say, unmounted) root reads as "no such file",
            # and a publisher would take "not there" for "not yet published".
            if not self._root.is_dir():
                raise DestinationUnavailable(
                    f"{op} {shown}: destination root {self._root} is missing or not a folder"
                )
            return action(target)

        try:
            return await asyncio.to_thread(guarded)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in _REFUSED_ERRNOS:
                raise DestinationRefused(f"{op} {shown} refused: {reason}") from exc
            logger.warning(
                "local destination %s unavailable: %s %s: %s", self._root, op, shown, reason
            )
            raise DestinationUnavailable(f"{op} {shown} failed: {reason}") from exc


def _stat_or_none(path: Path, *, follow_symlinks: bool = True) -> os.stat_result | None:
    # Only "no such entry" means absent; os.path.exists would also hide EACCES and EIO.
    try:
        return path.stat(follow_symlinks=follow_symlinks)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _regular_files(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once its directory entry is on disk.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
