"""The batch ledger: seals and publish records, kept on the destination itself.

For each (feed, source partition) the ledger folder holds one *seal* per batch, named by
the batch's first offset, and a *published* record once every file of it is in `csv/`:

    variance-sync/ledger/<feed>/<topic>/p<partition>/<start>.seal.json
    variance-sync/ledger/<feed>/<topic>/p<partition>/<start>.published.json

A seal is created with a no-replace rename, so two workers that both believe they own a
partition cannot claim different batches starting at the same offset: the loser reads
the winner's seal and publishes exactly that batch. Keeping the ledger beside the files
means it survives anything that the files survive, including the loss of Kafka state.

Each file of a seal is promoted into `csv/` by one staged upload only: the first
publisher to create `<start>.<file>.promote` (no-replace) names its staged file there,
and every publisher renames that one file into `csv/`. A rename of one file succeeds once,
so the batch lands once, however late a paused publisher wakes up.

Old batches are pruned, which frees their names; a claim of a pruned name (by a publisher
that paused since it read the head) would be a stale one. Pruning keeps the newest `keep`
seals, so any claim that finds a newer seal beside it is stale: it is withdrawn and the
publisher told it is `Superseded`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sinks.destination import Destination
from sinks.exceptions import LedgerConflict, Superseded
from sinks.feeds import STATE_DIR, AnyFeed
from sinks.manifest import BatchFile, manifest_bytes, parse_manifest
from sinks.source_partition import SourcePartition

SEAL_SUFFIX = ".seal.json"
PUBLISHED_SUFFIX = ".published.json"
PROMOTE_SUFFIX = ".promote"


@dataclass(frozen=True, slots=True)
class Seal:
    """A claimed batch: its offset range and files, fixed before anything is uploaded."""

    start: int
    end: int
    files: tuple[BatchFile, ...]
    manifest: dict[str, Any]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Seal:
        files = tuple(
            BatchFile(
                name=f["name"],
                rows=f["rows"],
                sha256=f["sha256"],
                size=f["size"],
                references_sha256=f.get("references_sha256", ""),
            )
            for f in manifest["files"]
        )
        offsets = manifest["offsets"]
        return cls(start=offsets["start"], end=offsets["end"], files=files, manifest=manifest)

    @property
    def row_count(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass(frozen=True, slots=True)
class LedgerHead:
    """The latest seal of a (feed, source partition) and whether it is fully published."""

    seal: Seal
    published: bool


def ledger_dir(feed: AnyFeed, source: SourcePartition) -> str:
    return f"{STATE_DIR}/ledger/{feed.name}/{source.topic}/p{source.partition}"


def manifests_dir(feed: AnyFeed) -> str:
    return f"{STATE_DIR}/manifests/{feed.name}"


def _start_name(start: int) -> str:
    return f"{start:020d}"


class BatchLedger:
    def __init__(self, dest: Destination, keep: int = 100, prune_every: int = 10) -> None:
        self._dest = dest
        self._keep = keep
        # Pruning lists the folder, a few SFTP round trips: not after every batch.
        self._prune_every = prune_every
        self._unpruned: dict[str, int] = {}  # ledger folder -> batches since its last prune

    async def head(self, feed: AnyFeed, source: SourcePartition) -> LedgerHead | None:
        folder = ledger_dir(feed, source)
        names = set(await self._dest.list_dir(folder))
        seals = sorted(name for name in names if name.endswith(SEAL_SUFFIX))
        if not seals:
            return None
        latest = seals[-1]
        start = latest.removesuffix(SEAL_SUFFIX)
        seal = await self._read_seal(f"{folder}/{latest}")
        return LedgerHead(seal=seal, published=f"{start}{PUBLISHED_SUFFIX}" in names)

    async def claim(self, feed: AnyFeed, source: SourcePartition, manifest: dict[str, Any]) -> Seal:
        """Seal this batch unless one starting at the same offset exists; return the winner.
        Raises `Superseded` when the partition is sealed past that start already."""
        folder = ledger_dir(feed, source)
        ours = Seal.from_manifest(manifest)
        target = f"{folder}/{_start_name(ours.start)}{SEAL_SUFFIX}"
        won = await self._create(folder, target, manifest_bytes(manifest))
        await self._current(folder, ours.start, target if won else None)
        return ours if won else await self._read_seal(target)

    async def claim_promotion(
        self, feed: AnyFeed, source: SourcePartition, seal: Seal, name: str, staged: str
    ) -> str:
        """The staged upload that is to become `csv/<name>`: `staged`, unless another
        publisher of the seal named its own first."""
        folder = ledger_dir(feed, source)
        target = f"{folder}/{_start_name(seal.start)}.{name}{PROMOTE_SUFFIX}"
        won = await self._create(folder, target, staged.encode())
        await self._current(folder, seal.start, target if won else None)
        if won:
            return staged
        holder = await self._dest.read(target)
        if holder is None:
            raise LedgerConflict(f"promotion record {target} vanished while it was being read")
        return holder.decode()

    async def promotion_holder(
        self, feed: AnyFeed, source: SourcePartition, seal: Seal, name: str
    ) -> str | None:
        """The staged upload the ledger names to become `csv/<name>`, if any."""
        folder = ledger_dir(feed, source)
        data = await self._dest.read(f"{folder}/{_start_name(seal.start)}.{name}{PROMOTE_SUFFIX}")
        return data.decode() if data is not None else None

    async def _create(self, folder: str, target: str, data: bytes) -> bool:
        """Create `target` holding `data` unless it exists; whether this call created it."""
        temp = f"{folder}/.claim-{uuid.uuid4().hex}.json"
        await self._dest.makedirs(folder)
        await self._dest.write(temp, data)
        if await self._dest.rename_noreplace(temp, target):
            return True
        await self._dest.remove(temp)
        return False

    async def _current(self, folder: str, start: int, created: str | None) -> None:
        """Refuse a claim at `start` once the partition is sealed past it (a pruned name,
        claimed again by a publisher that paused): withdraw what this claim created."""
        names = await self._dest.list_dir(folder)
        later = [
            int(n.removesuffix(SEAL_SUFFIX))
            for n in names
            if n.endswith(SEAL_SUFFIX) and int(n.removesuffix(SEAL_SUFFIX)) > start
        ]
        if not later:
            return
        if created is not None:
            await self._dest.remove(created)
        raise Superseded(
            f"{folder}: another worker has sealed this partition past offset {start} "
            f"(up to the batch at {max(later)}); this worker's view of it is stale"
        )

    async def record_published(
        self, feed: AnyFeed, source: SourcePartition, seal: Seal, published_at: datetime
    ) -> None:
        """Write the audit manifest, then the published record that closes the batch."""
        record = {**seal.manifest, "published_at": published_at.isoformat()}
        first_name = seal.files[0].name.removesuffix(".csv")
        await self._write_atomic(manifests_dir(feed), f"{first_name}.json", manifest_bytes(record))
        folder = ledger_dir(feed, source)
        await self._write_atomic(
            folder, f"{_start_name(seal.start)}{PUBLISHED_SUFFIX}", manifest_bytes(record)
        )
        recorded = self._unpruned.get(folder, 0) + 1
        if recorded >= self._prune_every:
            await self._prune(folder)
            recorded = 0
        self._unpruned[folder] = recorded

    async def _write_atomic(self, folder: str, name: str, data: bytes) -> None:
        temp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        await self._dest.makedirs(folder)
        await self._dest.write(temp, data)
        await self._dest.rename_replace(temp, f"{folder}/{name}")

    async def _read_seal(self, path: str) -> Seal:
        data = await self._dest.read(path)
        if data is None:
            raise LedgerConflict(f"seal {path} vanished while it was being read")
        try:
            return Seal.from_manifest(parse_manifest(data))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise LedgerConflict(f"seal {path} is unreadable: {exc}") from exc

    async def _prune(self, folder: str) -> None:
        # Only fully published batches older than the newest `keep` are removed; the
        # audit manifests stay. The head is never pruned, so ownership stays decidable.
        names = set(await self._dest.list_dir(folder))
        published = sorted(
            n.removesuffix(PUBLISHED_SUFFIX) for n in names if n.endswith(PUBLISHED_SUFFIX)
        )
        for start in published[: -self._keep]:
            for name in sorted(n for n in names if n.startswith(f"{start}.")):
                await self._dest.remove(f"{folder}/{name}")
