"""`variance-sync config check FILE`: the effective settings, secrets masked; one line and
exit 2 on a bad value. Also `--version` and `report --json`, the other global conventions."""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest

from streams.ops.config_check import setting_lines
from tests.factories import write_config
from tests.unit.cli_run import run

MASKED = "*" * 10  # how pydantic dumps a set SecretStr
SFTP = """
[sftp]
host = "sftp.example"
username = "acme"
known_hosts = "known_hosts"
password = "sftp-pass-do-not-print"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in os.environ:
        if variable.startswith(("VARIANCE_SYNC_", "KAFKA_BOOTSTRAP")):
            monkeypatch.delenv(variable)


def test_setting_lines_flatten_sections() -> None:
    settings = {"kafka": {"bootstrap": "a:1", "topics": {"dlq": "d"}}, "sftp": None, "m": {}}
    assert setting_lines(settings) == [
        'kafka.bootstrap = "a:1"',
        'kafka.topics.dlq = "d"',
        "sftp = null",
        "m = {}",
    ]


def test_it_prints_the_effective_settings_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, SFTP)
    monkeypatch.setenv("VARIANCE_SYNC_KAFKA__SASL_PASSWORD", "sasl-pass-do-not-print")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "from-env:9093")
    code, out, err = run(["config", "check", str(config)], capsys)
    assert (code, err) == (0, "")
    assert "do-not-print" not in out
    lines = out.splitlines()
    assert f'sftp.password = "{MASKED}"' in lines
    assert f'kafka.sasl_password = "{MASKED}"' in lines
    # The broker the worker would use, resolved as every command resolves it.
    assert 'kafka.bootstrap = "from-env:9093"' in lines
    assert 'sftp.host = "sftp.example"' in lines

    code, out, _ = run(["config", "check", "--json", str(config)], capsys)
    assert code == 0
    assert "do-not-print" not in out
    settings = json.loads(out)
    assert settings["sftp"]["password"] == MASKED
    assert settings["kafka"]["bootstrap"] == "from-env:9093"


def test_an_unset_secret_stays_null(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["config", "check", str(write_config(tmp_path))], capsys)
    assert code == 0
    assert "kafka.sasl_password = null" in out.splitlines()


def test_a_bad_value_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "\n[batching]\nwindow_seconds = -1\n")
    code, out, err = run(["config", "check", str(config)], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"variance-sync: error: {config}: batching.window_seconds: Input should be greater than 0\n"
    )


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out) == (0, f"variance-sync {version('variance-sync')}\n")


def test_report_takes_json_not_format_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["report", "--format", "json"], capsys)
    assert code == 2
    assert "argument --format: invalid choice: 'json'" in err
    code, _, err = run(["report", "--format", "csv", "--json"], capsys)
    assert code == 2
    assert "argument --json: not allowed with argument --format" in err
