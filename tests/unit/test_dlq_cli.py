"""`variance-sync dlq` errors are one line and exit code 2, with no broker running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from tests.factories import write_config


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq"], "the following arguments are required: dlq_command"),
        (["dlq", "show"], "the following arguments are required: N"),
        (["dlq", "show", "-1"], "argument N: '-1' is not a DLQ offset"),
        (["dlq", "redrive", "--offset", "x"], "argument --offset: 'x' is not a DLQ offset"),
        (["dlq", "list", "--class", "bogus"], "argument --class: invalid choice: 'bogus'"),
    ],
)
def test_bad_arguments_get_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.count("\n") == 1
    assert message in err


def test_an_unreachable_broker_is_one_line_on_stderr(tmp_path: Path) -> None:
    # A real process: in-process, pytest's log capture would hide aiokafka's own line.
    config = write_config(tmp_path)
    argv = ["dlq", "list", "--config", str(config), "--bootstrap", "127.0.0.1:9"]
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("variance-sync: error: cannot reach Kafka at 127.0.0.1:9: ")
    assert done.stderr.count("\n") == 1
