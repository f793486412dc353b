"""Reading NetSuite's failed/ and error/ folders: what was rejected, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sinks.feeds import ADJUSTMENT, TRANSFER
from sinks.local import LocalDestination
from sinks.naming import batch_file_name
from sinks.rejections import ERROR_HEADER, RejectionReader, failed_name, parse_error_file
from sinks.source_partition import SourcePartition
from streams.netsuite.import_rules import render_errors

AT = datetime(2024, 2, 29, 18, 0, tzinfo=UTC)
BATCH = batch_file_name("acme", ADJUSTMENT, AT, SourcePartition("counts", 0), 0, 4)
HEADER = ",".join(ERROR_HEADER)


def test_an_error_file_gives_netsuite_s_messages() -> None:
    data = render_errors("a.csv", ["Invalid item 3410", 'Location "9" is inactive'])
    assert parse_error_file(data) == ("Invalid item 3410", 'Location "9" is inactive')


def test_a_file_of_another_layout_gives_no_messages() -> None:
    assert parse_error_file(b"name,problem\na.csv,bad\n") == ()
    assert parse_error_file(b"") == ()
    assert parse_error_file(b"\xff\xfe") == ()


def test_an_error_file_names_its_failed_file() -> None:
    assert failed_name("x~2_error.csv") == "x~2.csv"


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text, encoding="utf-8")


async def test_failed_files_are_listed_with_their_reasons(tmp_path: Path) -> None:
    adjustments, transfers = ADJUSTMENT, TRANSFER
    write(tmp_path, f"{adjustments.failed_dir}/{BATCH}", "rows")
    error = BATCH.replace(".csv", "_error.csv")
    write(tmp_path, f"{adjustments.error_dir}/{error}", f"{HEADER}\n{BATCH},Bad\n")
    write(tmp_path, f"{transfers.failed_dir}/foreign.csv", "rows")
    write(tmp_path, f"{transfers.error_dir}/gone_error.csv", f"{HEADER}\ngone.csv,X\n")
    found = await RejectionReader(LocalDestination(tmp_path)).read()
    assert [(r.feed, r.file, r.in_failed, r.errors) for r in found] == [
        (adjustments.name, BATCH, True, ("Bad",)),
        (transfers.name, "foreign.csv", True, ()),
        (transfers.name, "gone.csv", False, ("X",)),
    ]
    assert found[0].batch_at == AT
    assert found[1].batch_at is None


async def test_an_error_file_is_read_again_only_when_its_size_changes(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path)
    path = f"{ADJUSTMENT.error_dir}/a_error.csv"
    write(tmp_path, path, f"{HEADER}\n")  # NetSuite is still writing it
    reader = RejectionReader(dest)
    assert (await reader.read())[0].errors == ()
    write(tmp_path, path, f"{HEADER}\na.csv,Invalid item\n")
    assert (await reader.read())[0].errors == ("Invalid item",)
    (tmp_path / path).unlink()
    assert await reader.read() == []
