"""The simulator's file handling on a local folder: recovery, collisions, retries, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sinks.csv_render import render
from sinks.exceptions import DestinationUnavailable
from sinks.feeds import ADJUSTMENT, AdjustmentRow
from sinks.local import LocalDestination
from streams.devstack.netsuite_sim import Importer, serve
from streams.netsuite.books import balances, open_ledger, transactions
from tests.factories import write_config
from tests.unit.cli_run import run

NAME = (
    "acme_InventoryAdjustmentFeed_2024-02-29-18_00_00_000_count-approved-p0_"
    "000000000000-000000000001.csv"
)


def adjustment_file(*references: str) -> bytes:
    rows = [
        AdjustmentRow(ref, "927", "3410", -2, "254", date(2024, 2, 29), "Counted", "1")
        for ref in references
    ]
    return render(ADJUSTMENT, rows)


def put(root: Path, folder: str, name: str, data: bytes) -> Path:
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


class ArchiveFailsOnce(LocalDestination):
    """The SFTP link drops right after the file was booked, before it moved."""

    failures = 1

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        if "/archive/" in dst and self.failures:
            self.failures -= 1
            raise DestinationUnavailable("connection lost")
        return await super().rename_noreplace(src, dst)


async def test_a_file_booked_before_an_outage_is_archived_later_and_booked_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "netsuite"
    put(root, "inventoryadjustment/csv", NAME, adjustment_file("CC1-10", "VL-x"))
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        importer = Importer(ArchiveFailsOnce(root), ledger)
        with pytest.raises(DestinationUnavailable):
            await importer.run_pass()
        assert (root / "inventoryadjustment/csv" / NAME).exists()
        result = await importer.run_pass()
        assert (result.imported, result.rows, result.failed) == (1, 2, 0)
        assert [t.reference for t in transactions(ledger)] == ["CC1-10", "VL-x"]
        assert balances(ledger) == {("254", "3410"): -4}
    assert files(root)["inventoryadjustment/cycle_count/" + NAME[:-4] + "_ack.csv"] == (
        b"workEffortId,externalId\r\nCC1,1\r\n"
    )
    assert ("inventoryadjustment/archive/" + NAME) in files(root)


async def test_a_file_already_in_archive_is_a_double_publish_and_fails(tmp_path: Path) -> None:
    root = tmp_path / "netsuite"
    put(root, "inventoryadjustment/archive", NAME, b"first")
    put(root, "inventoryadjustment/csv", NAME, adjustment_file("CC1-10"))
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        result = await Importer(LocalDestination(root), ledger).run_pass()
        assert transactions(ledger) == []
    assert (result.imported, result.failed) == (0, 1)
    after = files(root)
    assert after["inventoryadjustment/archive/" + NAME] == b"first"
    assert after["inventoryadjustment/failed/" + NAME] == adjustment_file("CC1-10")
    assert (
        after["inventoryadjustment/error/" + NAME[:-4] + "_error.csv"]
        == (
            f"fileName,errorMessage\r\n{NAME},inventoryadjustment/archive/{NAME} already exists: "
            "this file was imported before (double publish)\r\n"
        ).encode()
    )


async def test_a_second_failure_of_one_name_never_replaces_the_first(tmp_path: Path) -> None:
    root = tmp_path / "netsuite"
    put(root, "inventorytransfer/failed", "t.csv", b"earlier")
    put(root, "inventorytransfer/error", "t_error.csv", b"earlier reason")
    put(root, "inventorytransfer/csv", "t.csv", b"not,a,transfer\n")
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        await Importer(LocalDestination(root), ledger).run_pass()
    after = files(root)
    assert after["inventorytransfer/failed/t.csv"] == b"earlier"
    assert after["inventorytransfer/error/t_error.csv"] == b"earlier reason"
    assert after["inventorytransfer/failed/t~2.csv"] == b"not,a,transfer\n"
    assert after["inventorytransfer/error/t~2_error.csv"].startswith(
        b"fileName,errorMessage\r\nt.csv,\"line 1: header 'not,a,transfer' is not the"
    )


async def test_serving_survives_an_unreachable_destination_and_imports_once_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streams.devstack.netsuite_sim")
    root = tmp_path / "netsuite"  # missing: like an unmounted share
    stop = asyncio.Event()
    task = asyncio.create_task(serve(LocalDestination(root), tmp_path / "l.sqlite", 0.05, stop))
    await asyncio.sleep(0.2)
    assert not task.done()
    put(root, "inventoryadjustment/csv", NAME, adjustment_file("CC1-10"))
    archived = root / "inventoryadjustment/archive" / NAME
    for _ in range(200):  # a bounded wait for the next passes
        if archived.exists():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert archived.exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any("pass stopped, retrying in 0.05 s: " in m and "is missing" in m for m in messages)
    assert f"inventoryadjustment/csv/{NAME}: imported 1 rows, archived" in messages


def test_import_times_come_from_the_clock(tmp_path: Path) -> None:
    root = tmp_path / "netsuite"
    put(root, "inventoryadjustment/csv", NAME, b"")
    moment = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        asyncio.run(Importer(LocalDestination(root), ledger, clock=lambda: moment).run_pass())
        logged = ledger.execute("SELECT file, outcome, rows, at FROM imports").fetchall()
    assert logged == [(NAME, "archived", 0, "2024-03-01T12:00:00+00:00")]


def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone"
    config = write_config(
        tmp_path, f'\n[publish]\ndestination = "local"\nlocal_dir = "{missing}"\n'
    )
    ledger = str(tmp_path / "l.sqlite")
    code, _, err = run(
        ["netsuite-sim", "--config", str(config), "--ledger", ledger, "--once"], capsys
    )
    assert code == 2
    assert err.startswith(
        f"variance-sync: error: netsuite-sim: list {missing}/inventoryadjustment/csv"
    )
    assert err.count("\n") == 1
    nowhere = tmp_path / "none.sqlite"
    code, _, err = run(["netsuite-sim", "--ledger", str(nowhere), "--report"], capsys)
    assert (code, err) == (
        2,
        f"variance-sync: error: no ledger at {nowhere}; run `variance-sync netsuite-sim` first\n",
    )
    code, _, err = run(
        ["netsuite-sim", "--config", str(config), "--ledger", str(tmp_path), "--once"], capsys
    )
    assert code == 2
    assert err.startswith(f"variance-sync: error: cannot open the ledger {tmp_path}: ")
    for argv, message in [
        (["--interval", "0"], "argument --interval: '0' must be greater than 0"),
        (["--once", "--report"], "argument --report: not allowed with argument --once"),
    ]:
        code, _, err = run(["netsuite-sim", *argv], capsys)
        assert code == 2
        assert message in err
        assert err.count("\n") == 1


def test_report_prints_balances_and_the_import_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich folds long cells on narrow terminals
    root = tmp_path / "netsuite"
    config = write_config(tmp_path, f'\n[publish]\ndestination = "local"\nlocal_dir = "{root}"\n')
    put(root, "inventoryadjustment/csv", NAME, adjustment_file("CC1-10", "CC1-11"))
    put(root, "inventorytransfer/csv", "bad.csv", b"\xff")
    ledger = str(tmp_path / "l.sqlite")
    code, out, _ = run(
        ["netsuite-sim", "--config", str(config), "--ledger", ledger, "--once"], capsys
    )
    assert (code, out) == (0, "netsuite-sim: 1 files imported (2 rows), 1 failed\n")
    code, out, _ = run(["netsuite-sim", "--ledger", ledger, "--report", "--full"], capsys)
    assert code == 0
    assert "balances (2 transactions)" in out
    assert "│ 254      │ 3410 │       -4 │" in out
    assert "archived" in out
    assert "not UTF-8: byte 0xff at offset 0" in out
    # By default a summary, however big the books; --json has it all.
    code, out, _ = run(["netsuite-sim", "--ledger", ledger, "--report"], capsys)
    assert code == 0
    assert out.startswith(f"NetSuite books in {ledger}: 2 transaction(s), 1 balance(s) at 1 ")
    assert "inventoryadjustment: 1 file(s) imported, 0 failed" in out
    assert "failed: bad.csv: not UTF-8: byte 0xff at offset 0" in out
    assert len(out.splitlines()) < 20
    code, out, _ = run(["netsuite-sim", "--ledger", ledger, "--report", "--json"], capsys)
    books = json.loads(out)
    assert books["transactions"] == 2
    assert books["balances"] == [{"location": "254", "item": "3410", "quantity": -4}]
    assert [i["outcome"] for i in books["imports"]] == ["archived", "failed"]
