"""What NetSuite rejected: the files its script moved to `failed/`, with the reasons it
wrote to `error/`.

For a file it cannot import, NetSuite's scheduled script moves `<feed>/csv/<name>` to
`<feed>/failed/<name>` and writes `<feed>/error/<stem>_error.csv`, a CSV with the header
`fileName,errorMessage` and one line per problem (DESIGN section 5). Neither folder is
ever cleaned by NetSuite, so the reader below fetches each error file once per size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sinks.destination import Destination
from sinks.feeds import FEEDS, AnyFeed
from sinks.naming import parse_batch_file_name

ERROR_HEADER = ("fileName", "errorMessage")
ERROR_SUFFIX = "_error.csv"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A file NetSuite did not import. `in_failed` is False for an error file whose CSV is
    not (or no longer) in `failed/`; `errors` is empty when no readable error file exists."""

    feed: str
    file: str
    in_failed: bool
    errors: tuple[str, ...]
    batch_at: datetime | None  # from a variance-sync file name; None for a foreign file


def failed_name(error_file: str) -> str:
    """The `failed/` name that an error file explains."""
    return error_file.removesuffix(ERROR_SUFFIX) + ".csv"


def parse_error_file(data: bytes) -> tuple[str, ...]:
    """NetSuite's messages, or () when this is not an error file of the known layout."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
    if not rows or tuple(rows[0]) != ERROR_HEADER:
        return ()
    return tuple(row[1] for row in rows[1:] if len(row) == len(ERROR_HEADER))


def rejections(
    feed: AnyFeed, failed: Iterable[str], errors: Mapping[str, tuple[str, ...]]
) -> list[Rejection]:
    """One rejection per file in `failed/` or named by an error file, by file name."""
    present = set(failed)
    explained = {failed_name(name): messages for name, messages in errors.items()}
    found = []
    for name in sorted(present | explained.keys()):
        parsed = parse_batch_file_name(name)
        found.append(
            Rejection(
                feed=feed.name,
                file=name,
                in_failed=name in present,
                errors=explained.get(name, ()),
                batch_at=parsed.timestamp if parsed is not None else None,
            )
        )
    return found


class RejectionReader:
    """Lists `failed/` and `error/` of every feed. An error file is read again only when its
    size changed, so a folder of old rejections costs one listing and one stat per file."""

    def __init__(self, dest: Destination) -> None:
        self._dest = dest
        self._errors: dict[str, tuple[int, tuple[str, ...]]] = {}  # path -> size, messages

    async def read(self) -> list[Rejection]:
        found: list[Rejection] = []
        seen: set[str] = set()
        for feed in FEEDS:
            failed = await self._dest.list_dir(feed.failed_dir)
            errors: dict[str, tuple[str, ...]] = {}
            for name in await self._dest.list_dir(feed.error_dir):
                path = f"{feed.error_dir}/{name}"
                seen.add(path)
                errors[name] = await self._messages(path)
            found += rejections(feed, failed, errors)
        for gone in self._errors.keys() - seen:
            del self._errors[gone]
        return found

    async def _messages(self, path: str) -> tuple[str, ...]:
        size = await self._dest.size(path)
        cached = self._errors.get(path)
        if size is None or (cached is not None and cached[0] == size):
            return cached[1] if cached is not None else ()
        messages = parse_error_file(await self._dest.read(path) or b"")
        self._errors[path] = (size, messages)
        return messages
