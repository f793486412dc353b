"""The audit manifest: totals, file checksums, canonical bytes and strict parsing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sinks.csv_render import chunk_rows, render
from sinks.feeds import ADJUSTMENT, TRANSFER, AnyFeed, FeedRow
from sinks.manifest import BatchFile, build_manifest, manifest_bytes, parse_manifest
from sinks.naming import batch_file_name
from sinks.source_partition import SourcePartition
from tests.unit.test_csv_render import adj, count_rows, xfer

GOLDEN = Path(__file__).parent / "golden"
CHICAGO_WINTER = timezone(timedelta(hours=-6))
FIRST_EVENT = datetime(2024, 2, 29, 8, 5, 9, 123456, tzinfo=CHICAGO_WINTER)
CREATED = datetime(2024, 2, 29, 8, 6, 10, 5000, tzinfo=CHICAGO_WINTER)
COUNTS = SourcePartition("hotwax.inventory.count-approved", 3)
VARIANCES = SourcePartition("hotwax.inventory.variance-logged", 1)
DAY = date(2022, 6, 20)


def single_file_manifest(feed: AnyFeed, rows: list[FeedRow]) -> dict[str, object]:
    files = [BatchFile.from_bytes("f.csv", render(feed, rows), len(rows))]
    return build_manifest(
        feed=feed,
        source=VARIANCES,
        start=10,
        end=20,
        files=files,
        rows=rows,
        schema_versions=["VarianceLogged/1"],
        created_at=CREATED,
    )


def test_batch_file_from_bytes() -> None:
    assert BatchFile.from_bytes("x.csv", b"abc", 1) == BatchFile(
        name="x.csv",
        rows=1,
        sha256="ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        size=3,
    )


def test_a_chunked_batch_matches_its_golden_manifest() -> None:
    rows = count_rows(25)
    chunks = chunk_rows(rows, 10)
    files = [
        BatchFile.from_bytes(
            batch_file_name("acme", ADJUSTMENT, FIRST_EVENT, COUNTS, 120, 245, n, len(chunks)),
            render(ADJUSTMENT, chunk),
            len(chunk),
            [row.reference for row in chunk],
        )
        for n, chunk in enumerate(chunks, start=1)
    ]
    manifest = build_manifest(
        feed=ADJUSTMENT,
        source=COUNTS,
        start=120,
        end=245,
        files=files,
        rows=rows,
        schema_versions=["CountApproved/2", "CountApproved/1", "CountApproved/2"],
        created_at=CREATED,
    )
    data = manifest_bytes(manifest)
    assert data == (GOLDEN / "manifest_count_batch.json").read_bytes()
    assert parse_manifest(data) == manifest


def test_adjustment_totals_net_signed_quantities_per_location() -> None:
    rows: list[FeedRow] = [
        adj("CC1-1", "3410", -3, loc="254"),
        adj("CC1-2", "3411", 12, loc="254"),
        adj("VL-1", "3410", -2, loc="255"),
        adj("VL-2", "3412", 7, loc="256"),
        adj("VL-3", "3412", -7, loc="256"),
    ]
    manifest = single_file_manifest(ADJUSTMENT, rows)
    assert manifest["quantity_totals_by_location"] == {"254": 9, "255": -2, "256": 0}
    assert manifest["row_count"] == 5


def test_transfer_totals_take_from_source_and_give_to_destination() -> None:
    rows: list[FeedRow] = [
        xfer("VL-1", 5, "254", "1099", day=DAY, memo="Damaged"),
        xfer("VL-2", 2, "1097", "254", day=DAY, memo="Found"),
        xfer("VL-3", 3, "255", "1098", day=DAY, memo="Stolen"),
        xfer("VL-4", 5, "1099", "254", day=DAY, memo="Damaged, returned"),
    ]
    totals = single_file_manifest(TRANSFER, rows)["quantity_totals_by_location"]
    assert totals == {"254": 2, "255": -3, "1097": -2, "1098": 3, "1099": 0}
    # A transfer moves units; it neither creates nor destroys them.
    assert isinstance(totals, dict)
    assert sum(totals.values()) == 0


def test_manifest_identifies_feed_source_and_time_in_utc() -> None:
    manifest = single_file_manifest(
        TRANSFER, [xfer("VL-1", 5, "254", "1099", day=DAY, memo="Damaged")]
    )
    assert manifest["feed"] == "inventorytransfer"
    assert manifest["import_map"] == "custimport_inventory_transfer_hc"
    assert manifest["source"] == {"topic": "hotwax.inventory.variance-logged", "partition": 1}
    assert manifest["offsets"] == {"start": 10, "end": 20}
    assert manifest["created_at"] == "2024-02-29T14:06:10.005Z"
    assert datetime.fromisoformat("2024-02-29T14:06:10.005Z") == CREATED.astimezone(UTC)


def test_an_empty_batch_has_no_totals() -> None:
    manifest = single_file_manifest(ADJUSTMENT, [])
    assert manifest["row_count"] == 0
    assert manifest["quantity_totals_by_location"] == {}


def test_manifest_bytes_are_canonical_utf8_with_a_final_newline() -> None:
    manifest = {"b": 1, "a": {"z": "Dañado", "y": [2, 1]}}
    data = manifest_bytes(manifest)
    expected = (
        '{\n  "a": {\n    "y": [\n      2,\n      1\n    ],\n    "z": "Dañado"\n  },\n  "b": 1\n}\n'
    )
    assert data == expected.encode()
    assert manifest_bytes(json.loads(data)) == data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": [xfer("VL-1", 1, "254", "1099", day=DAY, memo="Damaged")]}, "another feed"),
        ({"files": []}, "files hold 0 rows"),
        ({"start": 21}, "offset range"),
        ({"start": -1}, "offset range"),
        ({"created_at": datetime(2024, 2, 29)}, "timezone"),
    ],
)
def test_inconsistent_batches_are_rejected(change: dict[str, object], message: str) -> None:
    rows = [adj("CC1-1", "3410", -3)]
    arguments: dict[str, object] = {
        "feed": ADJUSTMENT,
        "source": COUNTS,
        "start": 10,
        "end": 20,
        "files": [BatchFile.from_bytes("f.csv", render(ADJUSTMENT, rows), 1)],
        "rows": rows,
        "schema_versions": [],
        "created_at": CREATED,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        build_manifest(**arguments)  # type: ignore[arg-type]


def valid_manifest() -> dict[str, object]:
    return single_file_manifest(ADJUSTMENT, [adj("CC1-1", "3410", -3)])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"not json",
        b"[]",
        b"null",
        b'{"feed": "inventoryadjustment"}',
        manifest_bytes({**valid_manifest(), "feed": "inventorycount"}),
        manifest_bytes({**valid_manifest(), "row_count": True}),
        manifest_bytes({**valid_manifest(), "row_count": "1"}),
        manifest_bytes(valid_manifest()).replace(b'"row_count": 1', b'"row_count": NaN'),
    ],
)
def test_garbage_is_not_a_manifest(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a manifest"):
        parse_manifest(data)
