"""When a file reached csv/, for reconcile: from its batch's one audit manifest, whatever
the part (a batch over `max_rows` is split into parts, and only part 1 names it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sinks.feeds import ADJUSTMENT
from sinks.local import LocalDestination
from sinks.manifest import manifest_bytes
from sinks.naming import batch_file_name
from sinks.seal_ledger import manifests_dir
from sinks.source_partition import SourcePartition
from streams.ops.reconcile import published_at

COUNTS = SourcePartition("hotwax.inventory.count-approved", 1)
FIRST = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)
LANDED = datetime(2024, 2, 29, 18, 1, tzinfo=UTC)


async def test_every_part_of_a_batch_is_dated_by_its_manifest(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path)
    parts = [batch_file_name("acme", ADJUSTMENT, FIRST, COUNTS, 0, 9, n, 2) for n in (1, 2)]
    folder = manifests_dir(ADJUSTMENT)
    await dest.makedirs(folder)
    manifest = {"published_at": LANDED.isoformat()}
    await dest.write(f"{folder}/{parts[0].removesuffix('.csv')}.json", manifest_bytes(manifest))
    assert [await published_at(dest, name) for name in parts] == [LANDED, LANDED]
    other = batch_file_name("acme", ADJUSTMENT, FIRST, COUNTS, 10, 19)
    assert await published_at(dest, other) is None
