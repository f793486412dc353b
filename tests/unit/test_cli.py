"""Command-line errors are one line and exit code 2; no servers are needed for these."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import GroupAuthorizationFailedError

from streams.devstack.local_broker import free_port
from streams.errors import UsageError
from streams.netsuite.books import read_transactions
from tests.factories import variance, write_config
from tests.unit.cli_run import run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dev", "--kafka-port", "99999"], "argument --kafka-port: '99999' is not a TCP port"),
        (["dev", "--window-seconds", "0"], "argument --window-seconds: '0' must be greater than 0"),
        (["publish", "--topic", "counts", "x.jsonl"], "--topic 'counts' is not an input topic"),
        (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
        # float() takes these; a wait of nan seconds never ends, nan passes no threshold.
        (["lag", "--watch", "nan"], "argument --watch: 'nan' is not a finite number"),
        (["lag", "--interval", "inf"], "argument --interval: 'inf' is not a finite number"),
        (["lag", "--stall-after", "nan"], "argument --stall-after: 'nan' is not a finite"),
        (["dev", "--window-seconds", "inf"], "argument --window-seconds: 'inf' is not a finite"),
        (
            ["reconcile", "--ledger", "x.sqlite", "--import-lag", "-5"],
            "argument --import-lag: '-5' must not be negative",
        ),
        (
            ["reconcile", "--netsuite-export", "/srv/ns.csv"],
            "argument --netsuite-export: path must be relative to the destination root",
        ),
    ],
)
def test_bad_arguments_get_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err


def test_a_bad_config_file_gets_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "\n[batching]\nmax_rows = 0\n")
    code, _, err = run(["worker", "--config", str(config)], capsys)
    assert code == 2
    problem = "batching.max_rows: Input should be greater than or equal to 1"
    assert err == f"variance-sync: error: {config}: {problem}\n"


def test_a_missing_config_file_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Free ports of its own: the defaults (9092, 2222) may be taken on this machine.
    ports = ["--kafka-port", str(free_port()), "--sftp-port", str(free_port())]
    code, _, err = run(["dev", "--config", str(tmp_path / "nope.toml"), *ports], capsys)
    assert (code, err) == (
        2,
        f"variance-sync: error: {tmp_path / 'nope.toml'}: config file not found\n",
    )


def test_publish_reports_invalid_lines_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.dumps(variance(-1).model_dump(mode="json"))
    bad = json.dumps({**variance(-1).model_dump(mode="json"), "quantity": 0})
    events = tmp_path / "events.jsonl"
    events.write_text(f"{good}\n\n{bad}\nnot json\n[1]\n", encoding="utf-8")
    # Port 9 (discard) is closed: reaching the broker would fail, so exit 1 proves nothing was sent.
    code, out, err = run(
        ["publish", "--topic", "variance-logged", "--bootstrap", "127.0.0.1:9", str(events)], capsys
    )
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{events}:3: quantity:")
    assert lines[1].startswith(f"{events}:4: not JSON")
    assert lines[2] == f"{events}:5: not a JSON object"
    assert (
        lines[3]
        == "variance-sync: 3 invalid line(s); nothing sent (use --skip-invalid to send the rest)"
    )


def test_publish_to_an_unreachable_broker_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(variance(-1).model_dump(mode="json")) + "\n", encoding="utf-8")
    code, _, err = run(
        ["publish", "--topic", "variance-logged", "--bootstrap", "127.0.0.1:9", str(events)], capsys
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in err


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_dev_ports_in_use_or_shared_are_one_line(
    taken_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    # The other port is a free one, never a default that this machine may be using.
    code, _, err = run(
        ["dev", "--kafka-port", str(taken_port), "--sftp-port", str(free_port()), *data], capsys
    )
    assert code == 2
    assert err == (
        f"variance-sync: error: --kafka-port {taken_port}: Address already in use; "
        "choose another port with --kafka-port\n"
    )
    code, _, err = run(
        ["dev", "--kafka-port", str(free_port()), "--sftp-port", str(taken_port), *data], capsys
    )
    assert code == 2
    assert err.startswith(f"variance-sync: error: --sftp-port {taken_port}: ")
    code, _, err = run(["dev", "--kafka-port", "19000", "--sftp-port", "19000", *data], capsys)
    assert (code, err) == (
        2,
        "variance-sync: error: --kafka-port and --sftp-port are both 19000: give each its own\n",
    )


def test_a_worker_web_port_in_use_is_one_line(
    taken_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        f'\n[publish]\ndestination = "local"\nlocal_dir = "{tmp_path}"\n'
        f"\n[worker]\nweb_port = {taken_port}\n",
    )
    code, out, err = run(["worker", "--config", str(config)], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"variance-sync: error: worker.web_port {taken_port} on 127.0.0.1: Address already in "
        "use; set another with [worker] web_port or VARIANCE_SYNC_WORKER__WEB_PORT\n"
    )


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        (PermissionError(13, "Permission denied", "/srv/ledger"), "/srv/ledger: Permission denied"),
        (
            GroupAuthorizationFailedError("not authorized for group g"),
            "GroupAuthorizationFailedError",
        ),
        (sqlite3.DatabaseError("file is not a database"), "file is not a database"),
    ],
)
def test_what_the_machine_or_the_broker_refuses_is_one_line(
    refusal: Exception,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refused(args: object) -> int:
        raise refusal

    monkeypatch.setattr("streams.ops.lag.run", refused)
    code, _, err = run(["lag"], capsys)
    assert (code, err.count("\n")) == (2, 1), err
    assert message in err


def test_a_replay_export_that_is_not_text_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "offsets.json.gz"
    export.write_bytes(b"\x1f\x8b\x08\x00\xff")
    argv = ["replay", "--group", "g", "--topic", "count-approved", "--from-file", str(export)]
    code, _, err = run([*argv, "--config", str(write_config(tmp_path))], capsys)
    assert (code, err.count("\n")) == (2, 1), err
    assert "not UTF-8 text" in err


def test_reconcile_reads_a_ledger_without_writing_to_it(tmp_path: Path) -> None:
    other = tmp_path / "README.md"
    other.write_text("# not a ledger\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"cannot read the ledger .*README\.md"):
        read_transactions(other)
    assert other.read_text(encoding="utf-8") == "# not a ledger\n"
