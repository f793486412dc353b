"""The audit manifest written beside each published batch, in our own folder.

It records what a batch claimed to carry (rows, net quantity per location, offsets,
checksums), so reconciliation with NetSuite and with the source topics needs neither
the CSV files, which NetSuite moves away, nor Kafka, which expires them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sinks.feeds import FEEDS, AnyFeed, FeedRow
from sinks.source_partition import SourcePartition

# Bumped when a key changes meaning, so readers of old manifests can tell.
MANIFEST_VERSION = 1

Manifest = dict[str, Any]

_REQUIRED: dict[str, type] = {
    "manifest_version": int,
    "feed": str,
    "import_map": str,
    "source": dict,
    "offsets": dict,
    "files": list,
    "row_count": int,
    "quantity_totals_by_location": dict,
    "schema_versions": list,
    "created_at": str,
}


@dataclass(frozen=True, slots=True)
class BatchFile:
    """One published CSV file of a batch."""

    name: str
    rows: int
    sha256: str
    size: int
    # Of its rows' references in order: which rows it holds, whatever their rendering.
    # Empty in seals written before it was recorded.
    references_sha256: str = ""

    @classmethod
    def from_bytes(
        cls, name: str, data: bytes, rows: int, references: Sequence[str] = ()
    ) -> BatchFile:
        return cls(
            name=name,
            rows=rows,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            references_sha256=references_digest(references) if references else "",
        )


def references_digest(references: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(references).encode()).hexdigest()


def build_manifest(
    *,
    feed: AnyFeed,
    source: SourcePartition,
    start: int,
    end: int,
    files: Sequence[BatchFile],
    rows: Sequence[FeedRow],
    schema_versions: Iterable[str],
    created_at: datetime,
) -> Manifest:
    """The manifest of one batch as JSON-ready data.

    Raises ValueError when the parts disagree: a row of another feed's type, file row counts
    that do not add up to `rows`, a bad offset range or a naive `created_at`.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid offset range {start}..{end}")
    if created_at.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware")
    if any(not isinstance(row, feed.row_type) for row in rows):
        raise ValueError(f"a row of another feed in a {feed.name} batch")
    if sum(f.rows for f in files) != len(rows):
        raise ValueError(f"files hold {sum(f.rows for f in files)} rows, batch has {len(rows)}")
    totals: Counter[str] = Counter()
    for row in rows:
        # update(), not +=: Counter addition drops zero and negative totals.
        totals.update(row.location_totals())
    return {
        "manifest_version": MANIFEST_VERSION,
        "feed": feed.name,
        "import_map": feed.import_map,
        "source": {"topic": source.topic, "partition": source.partition},
        "offsets": {"start": start, "end": end},
        "files": [asdict(f) for f in files],
        "row_count": len(rows),
        "quantity_totals_by_location": dict(sorted(totals.items())),
        "schema_versions": sorted(set(schema_versions)),
        "created_at": _utc_iso(created_at),
    }


def manifest_bytes(manifest: Manifest) -> bytes:
    """Canonical bytes of a manifest: sorted keys, UTF-8, two-space indent, final newline."""
    text = json.dumps(manifest, sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def parse_manifest(data: bytes) -> Manifest:
    """A manifest read back from `manifest_bytes` output. Raises ValueError on anything else."""
    try:
        loaded = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"not a manifest: {exc}") from exc
    bad = [key for key, kind in _REQUIRED.items() if not _has(loaded, key, kind)]
    if bad:
        raise ValueError(f"not a manifest: missing or mistyped {', '.join(bad)}")
    manifest: Manifest = loaded  # an object with every required key, checked just above
    if manifest["feed"] not in {feed.name for feed in FEEDS}:
        raise ValueError(f"not a manifest: unknown feed {manifest['feed']!r}")
    return manifest


def _has(doc: object, key: str, kind: type) -> bool:
    if not isinstance(doc, dict):
        return False
    value = doc.get(key)
    # bool is an int subclass; a `true` row count is still garbage.
    return isinstance(value, kind) and not isinstance(value, bool)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
