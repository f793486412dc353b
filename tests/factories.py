"""Builders for settings and events, shared by unit and integration tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.models import CountApproved, CountLine, VarianceLogged
from streams.config import Settings, load_settings
from streams.core.dead_letter import DeadLetter, SourceRecord

SAMPLE_TOML = """\
[netsuite]
subsidiary_id = "1"
adjustment_account_id = "927"
cycle_count_memo = "Inventory cycle count by HotWax"
timezone = "America/Chicago"
file_prefix = "acme"
synced_reasons = ["VAR_LOST", "VAR_STOLEN", "VAR_DAMAGED", "VAR_FOUND"]
local_reasons = ["VAR_SAMPLE"]

[netsuite.variance_locations]
VAR_DAMAGED = "1099"
VAR_STOLEN = "1098"

[netsuite.facilities]
STORE_1 = "254"
STORE_2 = "255"
"""

_ids = itertools.count(1)
NOON_UTC = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)  # noon in Chicago on a leap day


def write_config(directory: Path, extra: str = "", base: str = SAMPLE_TOML) -> Path:
    path = directory / "variance-sync.toml"
    path.write_text(base + extra, encoding="utf-8")
    return path


def stack_config(tmp_path: Path, kafka: str, extra: str = "", name: str = "config.toml") -> Path:
    """A worker's config for an integration test: 1 s batches, publishing to a local
    NetSuite folder (made here), RocksDB table state; `kafka` is the `[kafka]` body."""
    (tmp_path / "netsuite").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(
        SAMPLE_TOML
        + f"""
[batching]
window_seconds = 1

[kafka]
{kafka}
[publish]
destination = "local"
local_dir = "{tmp_path / "netsuite"}"

[worker]
store = "rocksdb"
data_dir = "{tmp_path / "worker"}"
{extra}""",
        encoding="utf-8",
    )
    return path


def make_settings(
    tmp_path: Path, overrides: Mapping[str, Any] | None = None, extra: str = ""
) -> Settings:
    extra_publish = f'\n[publish]\ndestination = "local"\nlocal_dir = "{tmp_path / "netsuite"}"\n'
    return load_settings(write_config(tmp_path, extra_publish + extra), overrides)


def count(
    *lines: CountLine,
    facility: str = "STORE_1",
    count_id: str = "CC1001",
    event_id: str | None = None,
    location: str | None = None,
    at: datetime = NOON_UTC,
) -> CountApproved:
    return CountApproved(
        event_id=event_id or f"evt-{next(_ids)}",
        occurred_at=at,
        facility_id=facility,
        netsuite_location_id=location,
        count_id=count_id,
        approved_by="manager",
        lines=lines or (line("10017", "3410", counted=7, system=10),),
    )


def line(product: str, item: str, *, counted: int, system: int, **extra: Any) -> CountLine:
    return CountLine(
        product_id=product,
        netsuite_item_id=item,
        counted_quantity=counted,
        system_quantity=system,
        variance_quantity=counted - system,
        **extra,
    )


def variance(
    quantity: int,
    reason: str = "VAR_DAMAGED",
    *,
    facility: str = "STORE_1",
    product: str = "10017",
    item: str = "3410",
    event_id: str | None = None,
    description: str | None = None,
    location: str | None = None,
    at: datetime = NOON_UTC,
) -> VarianceLogged:
    return VarianceLogged(
        event_id=event_id or f"evt-{next(_ids)}",
        occurred_at=at,
        facility_id=facility,
        netsuite_location_id=location,
        product_id=product,
        netsuite_item_id=item,
        quantity=quantity,
        reason_id=reason,
        reason_description=description,
        comments=None,
        logged_by="associate",
    )


class DeadLetterLog:
    """A DLQ in a list, as the pipeline's `DeadLetterSink`: the offset is the index."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def known_end(self) -> int:
        return len(self.letters)

    async def send(self, letter: DeadLetter) -> int:
        self.letters.append(letter)
        return len(self.letters) - 1

    async def find(self, record: SourceRecord, from_offset: int) -> int | None:
        for offset in range(from_offset, len(self.letters)):
            sent = self.letters[offset].record
            if (sent.topic, sent.partition, sent.offset) == (
                record.topic,
                record.partition,
                record.offset,
            ):
                return offset
        return None
