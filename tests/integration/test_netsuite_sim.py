"""`variance-sync netsuite-sim --once` over real OpenSSH sshd and over a local folder,
and importing what a real worker published."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from sinks.csv_render import render
from sinks.feeds import ADJUSTMENT, FEEDS, TRANSFER, AdjustmentRow, AnyFeed, TransferRow
from streams.cli import main
from streams.devstack.local_broker import LocalBroker
from streams.netsuite.books import Transaction, balances, open_ledger, transactions
from tests.factories import SAMPLE_TOML
from tests.fixtures.broker import broker
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.test_pipeline_e2e import publish_mix, read_rows, worker_config

__all__ = ["broker"]

LEAP_DAY = date(2024, 2, 29)
COUNT = "Inventory cycle count by HotWax"


def batch(feed: AnyFeed, minute: int) -> str:
    offsets = f"{minute:012d}-{minute:012d}"
    return (
        f"acme_{feed.file_label}_2024-02-29-18_{minute:02d}_00_000_count-approved-p0_{offsets}.csv"
    )


A1, A2, A3, A4 = (batch(ADJUSTMENT, m) for m in range(4))
T1, T2, T3 = (batch(TRANSFER, m) for m in range(3))


def adj(
    reference: str, item: str, quantity: int, location: str = "254", memo: str = COUNT
) -> AdjustmentRow:
    return AdjustmentRow(reference, "927", item, quantity, location, LEAP_DAY, memo, "1")


def move(external_id: str, item: str, quantity: int, source: str, target: str) -> TransferRow:
    return TransferRow(external_id, item, quantity, source, target, LEAP_DAY, "Damaged", "1")


A1_BYTES = render(
    ADJUSTMENT,
    [
        adj("CC1001-10017", "3410", -3),
        adj("CC1001-10019", "3412", 5),
        adj("VL-lost-1", "3412", -1, memo="Lost"),
        adj("CC1002-20001", "4001", -2, location="300"),
    ],
)
A3_BYTES = render(ADJUSTMENT, [adj("CC1003-1", "3410", 1)]) + (
    b"CC1003-2,927,3410,1.5,254,02/29/2024,M,1,CC1003-2\r\n"
    b"CC1003-3,927,3410,2,254,02/30/2024,M,1,CC1003-3\r\n"
)
A4_BYTES = render(ADJUSTMENT, [adj("CC1004-1", "3410", 7)])
T1_BYTES = render(
    TRANSFER,
    [move("VL-dmg-1", "3410", 5, "254", "1099"), move("VL-found-1", "3411", 2, "1099", "254")],
)
T2_BYTES = render(
    TRANSFER,
    [move("VL-dmg-1", "3410", 5, "254", "1099"), move("VL-new-1", "3410", 1, "254", "1099")],
)
T3_BYTES = render(TRANSFER, [move("VL-stolen-1", "3410", 1, "254", "1098")]).replace(b"\r\n", b"\n")

ERROR_A3 = (
    f"fileName,errorMessage\r\n{A3},line 3: Adjust Qty By '1.5' is not an integer\r\n"
    f"{A3},line 4: Date '02/30/2024' is not a valid MM/DD/YYYY date\r\n"
).encode()
DOUBLE_A4 = (
    f"inventoryadjustment/archive/{A4} already exists: "
    "this file was imported before (double publish)"
)
BOOKED_T2 = "line 2: External Id 'VL-dmg-1' already exists in NetSuite"


@dataclass
class Target:
    config: Path
    root: Path  # the NetSuite base directory, as files on this machine


@pytest.fixture(params=["local", "sftp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        root = tmp_path / "netsuite"
        extra = f'\n[publish]\ndestination = "local"\nlocal_dir = "{root}"\n'
    else:
        sshd: SSHDServer = request.getfixturevalue("sshd")
        base_dir = f"netsuite-{uuid.uuid4().hex[:8]}"
        root = sshd.root / base_dir
        p = sshd.params
        extra = (
            f'\n[sftp]\nhost = "127.0.0.1"\nport = {p.port}\nusername = "{p.username}"\n'
            f'base_dir = "{base_dir}"\nprivate_key = "{p.client_keys[0]}"\n'
            f'known_hosts = "{p.known_hosts}"\n'
        )
    config = tmp_path / "config.toml"
    config.write_text(SAMPLE_TOML + extra, encoding="utf-8")
    return Target(config, root)


def put(root: Path, folder: str, name: str, data: bytes) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / name).write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


Imports = list[tuple[str, str, str, int, str]]


def books(ledger: Path) -> tuple[dict[tuple[str, str], int], list[Transaction], Imports]:
    with open_ledger(ledger) as connection:
        imports = connection.execute(
            "SELECT file, feed, outcome, rows, COALESCE(error, '') FROM imports ORDER BY rowid"
        ).fetchall()
        return balances(connection), transactions(connection), imports


def sim_once(config: Path, ledger: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["netsuite-sim", "--config", str(config), "--ledger", str(ledger), "--once"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


def test_a_pass_archives_valid_files_fails_the_rest_and_repeats_nothing(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, ledger = target.root, tmp_path / "netsuite-sim.sqlite"
    put(root, "inventoryadjustment/archive", A4, b"imported yesterday")
    for name, data in [(A1, A1_BYTES), (A2, b""), (A3, A3_BYTES), (A4, A4_BYTES)]:
        put(root, "inventoryadjustment/csv", name, data)
    for name, data in [(T1, T1_BYTES), (T2, T2_BYTES), (T3, T3_BYTES)]:
        put(root, "inventorytransfer/csv", name, data)

    out = sim_once(target.config, ledger, capsys)

    assert out == "netsuite-sim: 4 files imported (7 rows), 3 failed\n"
    stem = {name: name.removesuffix(".csv") for name in (A1, A3, A4, T2)}
    assert tree(root) == {
        f"inventoryadjustment/archive/{A1}": A1_BYTES,
        f"inventoryadjustment/archive/{A2}": b"",
        f"inventoryadjustment/archive/{A4}": b"imported yesterday",
        f"inventoryadjustment/cycle_count/{stem[A1]}_ack.csv": (
            b"workEffortId,externalId\r\nCC1001,1\r\nCC1001,2\r\nCC1002,4\r\n"
        ),
        f"inventoryadjustment/error/{stem[A3]}_error.csv": ERROR_A3,
        f"inventoryadjustment/error/{stem[A4]}_error.csv": (
            f"fileName,errorMessage\r\n{A4},{DOUBLE_A4}\r\n".encode()
        ),
        f"inventoryadjustment/failed/{A3}": A3_BYTES,
        f"inventoryadjustment/failed/{A4}": A4_BYTES,
        f"inventorytransfer/archive/{T1}": T1_BYTES,
        f"inventorytransfer/archive/{T3}": T3_BYTES,
        f"inventorytransfer/error/{stem[T2]}_error.csv": (
            f"fileName,errorMessage\r\n{T2},{BOOKED_T2}\r\n".encode()
        ),
        f"inventorytransfer/failed/{T2}": T2_BYTES,
    }
    balance, booked, imports = books(ledger)
    assert balance == {
        ("254", "3410"): -3 - 5 - 1,
        ("254", "3412"): 5 - 1,
        ("300", "4001"): -2,
        ("1099", "3410"): 5,
        ("1099", "3411"): -2,
        ("254", "3411"): 2,
        ("1098", "3410"): 1,
    }
    day = "2024-02-29"
    assert booked == [
        Transaction("adjustment", "CC1001-10017", "3410", "254", None, -3, day, COUNT, A1),
        Transaction("adjustment", "CC1001-10019", "3412", "254", None, 5, day, COUNT, A1),
        Transaction("adjustment", "VL-lost-1", "3412", "254", None, -1, day, "Lost", A1),
        Transaction("adjustment", "CC1002-20001", "4001", "300", None, -2, day, COUNT, A1),
        Transaction("transfer", "VL-dmg-1", "3410", "254", "1099", 5, day, "Damaged", T1),
        Transaction("transfer", "VL-found-1", "3411", "1099", "254", 2, day, "Damaged", T1),
        Transaction("transfer", "VL-stolen-1", "3410", "254", "1098", 1, day, "Damaged", T3),
    ]
    assert imports == [
        (A1, "inventoryadjustment", "archived", 4, ""),
        (A2, "inventoryadjustment", "archived", 0, ""),
        (
            A3,
            "inventoryadjustment",
            "failed",
            0,
            "line 3: Adjust Qty By '1.5' is not an integer (and 1 more)",
        ),
        (A4, "inventoryadjustment", "failed", 0, DOUBLE_A4),
        (T1, "inventorytransfer", "archived", 2, ""),
        (T2, "inventorytransfer", "failed", 0, BOOKED_T2),
        (T3, "inventorytransfer", "archived", 1, ""),
    ]

    files_before, books_before = tree(root), books(ledger)
    assert (
        sim_once(target.config, ledger, capsys)
        == "netsuite-sim: 0 files imported (0 rows), 0 failed\n"
    )
    assert tree(root) == files_before
    assert books(ledger) == books_before


def test_the_simulator_imports_everything_a_real_worker_published(
    tmp_path: Path, broker: LocalBroker, sshd: SSHDServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base_dir = f"netsuite-{uuid.uuid4().hex[:8]}"
    root = sshd.root / base_dir
    config = worker_config(tmp_path, broker, sshd, base_dir)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        asyncio.run(publish_mix(broker.bootstrap))
        adjustments, transfers = (root / feed.csv_dir for feed in FEEDS)
        wait_for(
            lambda: len(read_rows(adjustments)[1]) >= 4 and len(read_rows(transfers)[1]) >= 2,
            60,
            "the CSV rows",
            worker,
        )
        time.sleep(3)  # one more window: nothing else may arrive
    finally:
        worker.stop()
    published = {p.name for folder in (adjustments, transfers) for p in folder.glob("*.csv")}

    sim_once(config, tmp_path / "ledger.sqlite", capsys)

    balance, _, imports = books(tmp_path / "ledger.sqlite")
    # The rows of test_pipeline_e2e.EXPECTED_ADJUSTMENTS and EXPECTED_TRANSFERS, netted.
    assert balance == {
        ("254", "3410"): -3 - 5,
        ("254", "3412"): 5 - 1,
        ("300", "4001"): -2,
        ("1099", "3410"): 5,
        ("1099", "3411"): -2,
        ("254", "3411"): 2,
    }
    assert {(file, outcome) for file, _, outcome, _, _ in imports} == {
        (name, "archived") for name in published
    }
    assert not list(adjustments.iterdir())
    assert not list(transfers.iterdir())
    archived = {p.name for feed in FEEDS for p in (root / feed.archive_dir).iterdir()}
    assert archived == published
    with open_ledger(tmp_path / "ledger.sqlite") as connection:
        references = dict(connection.execute("SELECT id, reference FROM transactions"))
    acknowledged = [
        (row[0], references[int(row[1])])
        for ack in (root / "inventoryadjustment" / "cycle_count").iterdir()
        for row in (line.split(",") for line in ack.read_text().splitlines()[1:])
    ]
    assert sorted(acknowledged) == [
        ("CC1001", "CC1001-10017"),
        ("CC1001", "CC1001-10019"),
        ("CC1002", "CC1002-20001"),
    ]


def test_running_forever_imports_as_files_arrive_and_stops_on_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "netsuite"
    config = tmp_path / "config.toml"
    config.write_text(
        SAMPLE_TOML + f'\n[publish]\ndestination = "local"\nlocal_dir = "{root}"\n',
        encoding="utf-8",
    )
    root.mkdir()
    argv = ["netsuite-sim", "--config", str(config), "--ledger", str(tmp_path / "l.sqlite")]
    sim = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *argv, "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        put(root, "inventorytransfer/csv", T1, T1_BYTES)
        deadline = time.monotonic() + 30
        while not (root / "inventorytransfer/archive" / T1).exists():
            assert sim.poll() is None, sim.communicate()[0].decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        sim.send_signal(signal.SIGTERM)
        output = sim.communicate(timeout=30)[0].decode()
    assert sim.returncode == 0, output
    assert f"INFO inventorytransfer/csv/{T1}: imported 2 rows, archived\n" in output
