"""The folder tree under the NetSuite base directory, and what a path inside it may be."""

from __future__ import annotations

from pathlib import PurePosixPath

from sinks.destination import Destination
from sinks.feeds import FEED_SUBDIRS, FEEDS, STATE_DIR

LEDGER_DIR = f"{STATE_DIR}/ledger"
MANIFESTS_DIR = f"{STATE_DIR}/manifests"


def netsuite_tree() -> tuple[str, ...]:
    """Every folder ensure_layout creates, relative to the base directory, in creation
    order: each registered feed's folders, then ours."""
    feeds = tuple(f"{feed.name}/{sub}" for feed in FEEDS for sub in FEED_SUBDIRS)
    return (*feeds, LEDGER_DIR, MANIFESTS_DIR)


async def ensure_layout(dest: Destination) -> None:
    """Create the feed folders and our state folders if missing; safe to repeat."""
    for folder in netsuite_tree():
        await dest.makedirs(folder)


def relative_path(path: str) -> PurePosixPath:
    """Check that `path` stays inside the base directory, and return it parsed.

    Paths are built from event data (feed, facility, batch names), so a value such as
    `../../etc` must never reach the server. Raises ValueError for absolute paths, `..`
    components and NUL bytes. The empty path and `.` mean the base directory itself.
    """
    if "\x00" in path:
        raise ValueError(f"path contains a NUL byte: {path!r}")
    parsed = PurePosixPath(path)
    if parsed.is_absolute():
        raise ValueError(f"path must be relative to the destination root: {path!r}")
    if ".." in parsed.parts:
        raise ValueError(f"path must not contain '..': {path!r}")
    return parsed
