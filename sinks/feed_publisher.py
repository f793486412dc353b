"""The publish protocol for one (feed, source partition).

Each flush runs these steps in order; docs/publish-protocol.md explains why each order
is safe and what a crash between any two of them leaves behind.

1. READ HEAD  - list the ledger; the latest seal says which offsets are taken.
2. COMPLETE   - a latest seal that is not yet published is finished first, exactly as
                sealed (same offset range, same file names), once its rows are consumed.
3. SEAL       - the next batch starts right after the latest seal and ends at the last
                consumed offset. Its manifest is claimed with a no-replace rename; if
                another worker claimed that start first, its seal is adopted instead.
4. STAGE      - each file is uploaded to `<feed>/.staging/` (outside `csv/`) under a name
                unique to this attempt ...
5. VERIFY     - ... its size, and its sha256 when read-back is enabled, is checked ...
6. PROMOTE    - ... and it is renamed into `<feed>/csv/` in one step, without replacing:
                if another publisher of the same seal got there first, ours is dropped.
                A file already in `csv/`, `archive/` or `failed/` is never uploaded again.
7. RECORD     - the audit manifest and the ledger's published record are written.

The caller then drops the rows and lets the source offsets be committed (step 8).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sinks.csv_render import chunk_rows, render
from sinks.destination import Destination
from sinks.exceptions import LedgerConflict, SinkError, VerificationFailed
from sinks.feeds import AnyFeed
from sinks.manifest import BatchFile, build_manifest, references_digest
from sinks.naming import batch_file_name, parse_batch_file_name
from sinks.rows import PendingRow
from sinks.seal_ledger import BatchLedger, LedgerHead, Seal
from sinks.source_partition import SourcePartition

log = logging.getLogger(__name__)

FaultHook = Callable[[str], Awaitable[None]]
STAGED_SUFFIX = ".part"


async def no_faults(step: str) -> None:
    """The production fault hook: does nothing."""


@dataclass(frozen=True, slots=True)
class FileAttempt:
    """One attempt to publish one file, reported to the caller for its metrics."""

    feed: AnyFeed
    seconds: float
    # When this attempt renamed the file into csv/, and the broker timestamps of its rows'
    # source records; None and () when it failed or another publisher got there first.
    landed_at: datetime | None = None
    record_times: tuple[datetime, ...] = ()


AttemptHook = Callable[[FileAttempt], None]


def ignore_attempt(attempt: FileAttempt) -> None:
    """The default attempt hook: reports nowhere."""


@dataclass(frozen=True, slots=True)
class PublisherOptions:
    file_prefix: str
    max_rows: int
    verify_checksum: bool = True
    # A retriable failure that lasts this long needs an operator after all (a permission
    # that stays refused, a disk that stays full): the writer parks, and pages.
    park_after_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class FlushResult:
    """`done_through`: every row of this feed at or below this offset is published (or
    was already). `waiting_for`: a sealed batch needs the rows up to this offset, which
    are not consumed yet."""

    done_through: int
    published: tuple[str, ...] = ()
    already_present: tuple[str, ...] = ()
    waiting_for: int | None = None


class FeedPublisher:
    """Runs the protocol for one feed of one source partition. Nothing it keeps between
    flushes decides anything (`sealed` is for the console): the ledger on the destination
    is the only truth."""

    def __init__(
        self,
        feed: AnyFeed,
        source: SourcePartition,
        dest: Destination,
        ledger: BatchLedger,
        options: PublisherOptions,
        *,
        faults: FaultHook = no_faults,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer: Callable[[], float] = time.perf_counter,
        observe: AttemptHook = ignore_attempt,
    ) -> None:
        self.feed = feed
        self.source = source
        self._dest = dest
        self._ledger = ledger
        self._options = options
        self._faults = faults
        self._clock = clock
        self._timer = timer
        self._observe = observe
        self._log = _Context(
            log, {"feed": feed.name, "topic": source.topic, "partition": source.partition}
        )
        # For the console only: the latest seal seen without its published record.
        self.sealed: tuple[int, int] | None = None

    async def flush(self, rows: Sequence[PendingRow], consumed_through: int) -> FlushResult:
        """Publish every row up to `consumed_through`, the last offset consumed so far."""
        progress = _Progress()
        head = await self._ledger.head(self.feed, self.source)
        rendered: list[bytes] | None = None  # the files of `head`, when we just sealed it
        while True:
            if head is not None and not head.published:
                self.sealed = (head.seal.start, head.seal.end)
                if head.seal.end > consumed_through:
                    return progress.result(head.seal.start - 1, waiting_for=head.seal.end)
                await self._complete(head.seal, _within(rows, head.seal), progress, rendered)
                head, self.sealed = LedgerHead(head.seal, published=True), None
            start = head.seal.end + 1 if head is not None else 0
            batch = [row for row in rows if start <= row.offset <= consumed_through]
            if not batch:
                return progress.result(max(consumed_through, start - 1))
            ours, contents = self._seal(start, consumed_through, batch)
            winner = await self._ledger.claim(self.feed, self.source, ours.manifest)
            rendered = contents if winner == ours else None
            if winner.end != ours.end:
                self._log.warning(
                    "offsets %d-%d were already sealed by another worker as %d-%d; adopting it",
                    start,
                    consumed_through,
                    winner.start,
                    winner.end,
                )
            head = LedgerHead(winner, published=False)

    def _seal(self, start: int, end: int, rows: Sequence[PendingRow]) -> tuple[Seal, list[bytes]]:
        """The seal of this batch, and its files' contents."""
        chunks = chunk_rows([row.row for row in rows], self._options.max_rows)
        first_at = rows[0].record_at
        files, contents = [], []
        for part, chunk in enumerate(chunks, start=1):
            name = batch_file_name(
                self._options.file_prefix,
                self.feed,
                first_at,
                self.source,
                start,
                end,
                part=part,
                parts=len(chunks),
            )
            contents.append(render(self.feed, chunk))
            references = [row.reference for row in chunk]
            files.append(BatchFile.from_bytes(name, contents[-1], len(chunk), references))
        manifest = build_manifest(
            feed=self.feed,
            source=self.source,
            start=start,
            end=end,
            files=files,
            rows=[row.row for row in rows],
            schema_versions={row.schema_version for row in rows},
            created_at=self._clock(),
        )
        return Seal.from_manifest(manifest), contents

    async def _complete(
        self,
        seal: Seal,
        rows: Sequence[PendingRow],
        progress: _Progress,
        contents: list[bytes] | None = None,
    ) -> None:
        """Publish the sealed files; `contents` are theirs when this flush sealed them."""
        recovering = contents is None  # a seal from an earlier attempt, ours or another's
        for index, file in enumerate(seal.files):
            where = await self._locate(file.name)
            if where is None:
                if contents is None:
                    contents = self._rebuild(seal, rows)
                where = await self._attempt(seal, file, contents[index], _times(seal, rows, index))
            if where is not None:
                self._log.info("%s already in %s; not publishing it again", file.name, where)
                await self._retire_holder(seal, file)
                progress.present.append(file.name)
                continue
            progress.published.append(file.name)
        await self._ledger.record_published(self.feed, self.source, seal, self._clock())
        await self._faults("recorded")
        if recovering:
            await self._sweep_staging(seal)
        self._log.info(
            "published offsets %d-%d: %d rows in %d file(s)",
            seal.start,
            seal.end,
            seal.row_count,
            len(seal.files),
        )

    def _rebuild(self, seal: Seal, rows: Sequence[PendingRow]) -> list[bytes]:
        """Render the sealed files again from re-consumed rows, split as sealed."""
        if len(rows) != seal.row_count:
            raise LedgerConflict(
                f"{self.feed.name} {self.source.topic}[{self.source.partition}] offsets "
                f"{seal.start}-{seal.end} were sealed with {seal.row_count} rows but rebuild to "
                f"{len(rows)}; was the routing config changed while a batch was in flight?"
            )
        contents, cursor = [], 0
        for file in seal.files:
            chunk = [row.row for row in rows[cursor : cursor + file.rows]]
            cursor += file.rows
            held = references_digest([row.reference for row in chunk])
            if file.references_sha256 and held != file.references_sha256:
                # As many rows, other ones (rows moved between feeds): publishing them
                # would import one row twice and lose another.
                raise LedgerConflict(
                    f"{file.name} was sealed with other rows than offsets {seal.start}-"
                    f"{seal.end} rebuild to; was the routing config changed while a batch "
                    "was in flight?"
                )
            data = render(self.feed, chunk)
            if hashlib.sha256(data).hexdigest() != file.sha256:
                # The same rows, rendered anew (a NetSuite id changed in the config).
                self._log.warning("%s renders differently than when sealed", file.name)
            contents.append(data)
        return contents

    async def _locate(self, name: str) -> str | None:
        # csv/ first: NetSuite moves files csv/ -> archive/, so this order cannot miss one.
        for folder in (self.feed.csv_dir, self.feed.archive_dir, self.feed.failed_dir):
            if await self._dest.exists(f"{folder}/{name}"):
                return folder
        return None

    async def _attempt(
        self, seal: Seal, file: BatchFile, data: bytes, record_times: tuple[datetime, ...]
    ) -> str | None:
        """`_publish_file`, timed and reported through the attempt hook."""
        started = self._timer()
        try:
            where = await self._publish_file(seal, file, data)
        except SinkError:
            self._observe(FileAttempt(self.feed, self._timer() - started))
            raise
        seconds = self._timer() - started
        if where is None:
            self._observe(FileAttempt(self.feed, seconds, self._clock(), record_times))
        else:
            self._observe(FileAttempt(self.feed, seconds))
        return where

    async def _publish_file(self, seal: Seal, file: BatchFile, data: bytes) -> str | None:
        """Stage, verify and promote one file; the folder it was found in when another
        publisher of the same seal (a zombie, or its successor) promoted it first."""
        # Unique per attempt: two publishers of one seal never write the same staged file.
        staged = f"{self.feed.staging_dir}/{file.name}.{uuid.uuid4().hex}{STAGED_SUFFIX}"
        await self._dest.makedirs(self.feed.staging_dir)
        try:
            await self._dest.write(staged, data)
            await self._faults("staged")
            await self._verify(staged, data)
        except SinkError:
            await self._discard(staged)
            raise
        holder = await self._ledger.claim_promotion(self.feed, self.source, seal, file.name, staged)
        if holder != staged:
            await self._discard(staged)
        return await self._promote(holder, file, len(data))

    async def _promote(self, holder: str, file: BatchFile, size: int) -> str | None:
        """Rename the one staged upload that the ledger names into `csv/`; None when this
        call did it, else the folder the file is in (another publisher did)."""
        target = f"{self.feed.csv_dir}/{file.name}"
        await self._faults("promoting")
        # Looked for again, just before the rename: another publisher may have landed it
        # while we uploaded, and after a pause here NetSuite may have moved it to archive/
        # already, where a rename into csv/ would not see it.
        where = await self._locate(file.name)
        if where is not None:
            await self._discard(holder)  # never to be renamed, whoever uploaded it
            return where
        try:
            moved = await self._dest.rename_noreplace(holder, target)
        except SinkError:
            # Gone already: its publisher moved it, and NetSuite may have too.
            where = await self._locate(file.name)
            if where is not None:
                return where
            if await self._dest.exists(holder):
                raise
            raise LedgerConflict(
                f"{file.name}: the staged upload {holder} that the ledger promotes is gone, "
                "and the file is in none of csv/, archive/ and failed/"
            ) from None
        if not moved:
            return self.feed.csv_dir
        await self._faults("promoted")
        self._log.info("published %s (%d rows, %d bytes)", file.name, file.rows, size)
        return None

    async def _retire_holder(self, seal: Seal, file: BatchFile) -> None:
        """Remove the upload the ledger promotes for `file` if it outlived the file's rename
        (a server that links, then unlinks, cut between the two): a paused publisher of the
        seal would rename it into `csv/` again once NetSuite has moved the file away."""
        holder = await self._ledger.promotion_holder(self.feed, self.source, seal, file.name)
        if holder is not None and await self._dest.exists(holder):
            self._log.warning("%s outlived its rename into csv/; removing it", holder)
            await self._discard(holder)

    async def _discard(self, staged: str) -> None:
        with contextlib.suppress(SinkError):
            await self._dest.remove(staged)

    async def _sweep_staging(self, seal: Seal) -> None:
        """Remove uploads that interrupted attempts at this partition's earlier seals left
        in `.staging/`. This seal's own are left alone: a stalled publisher of it may
        still be verifying one, and the next recovery sweeps them."""
        for name in await self._dest.list_dir(self.feed.staging_dir):
            if not name.endswith(STAGED_SUFFIX):
                continue
            batch = name.removesuffix(STAGED_SUFFIX).rpartition(".")[0]  # drop the attempt
            parsed = parse_batch_file_name(batch)
            if parsed is None:
                continue
            ours = (parsed.topic_tag, parsed.partition) == (self.source.tag, self.source.partition)
            if ours and parsed.end < seal.start:
                self._log.info("removing %s, left by an interrupted attempt", name)
                await self._dest.remove(f"{self.feed.staging_dir}/{name}")

    async def _verify(self, staged: str, data: bytes) -> None:
        size = await self._dest.size(staged)
        if size != len(data):
            raise VerificationFailed(f"{staged}: staged {size} bytes, sent {len(data)}")
        if not self._options.verify_checksum:
            return
        echoed = await self._dest.read(staged)
        if echoed is None or hashlib.sha256(echoed).digest() != hashlib.sha256(data).digest():
            raise VerificationFailed(f"{staged}: read-back checksum differs from what was sent")


@dataclass
class _Progress:
    published: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def result(self, done_through: int, waiting_for: int | None = None) -> FlushResult:
        return FlushResult(done_through, tuple(self.published), tuple(self.present), waiting_for)


class _Context(logging.LoggerAdapter[logging.Logger]):
    """Puts the feed and source partition in front of every line."""

    def process(self, msg: str, kwargs: Any) -> tuple[str, Any]:
        extra = self.extra or {}
        return f"[{extra['feed']} {extra['topic']}[{extra['partition']}]] {msg}", kwargs


def _within(rows: Sequence[PendingRow], seal: Seal) -> list[PendingRow]:
    return [row for row in rows if seal.start <= row.offset <= seal.end]


def _times(seal: Seal, rows: Sequence[PendingRow], index: int) -> tuple[datetime, ...]:
    """The source record times of the rows in the seal's file `index` (files are chunks of
    the seal's rows, in order)."""
    start = sum(file.rows for file in seal.files[:index])
    return tuple(row.record_at for row in rows[start : start + seal.files[index].rows])
