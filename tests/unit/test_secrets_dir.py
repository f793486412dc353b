"""Secrets from files: `$VARIANCE_SYNC_SECRETS_DIR` holds one file per setting, named
`<section>__<key>` as Docker and Kubernetes mount them; the environment still wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.config import ConfigError, load_settings
from tests.factories import write_config

SFTP = '\n[sftp]\nhost = "sftp.example"\nusername = "netsuite"\nknown_hosts = "/k"\n'
SECRET = "file-SECRET-5d1c"  # noqa: S105 - a marker to search output for, not a secret


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    monkeypatch.setenv("VARIANCE_SYNC_SECRETS_DIR", str(folder))
    return folder


def test_a_secret_file_feeds_its_nested_setting(tmp_path: Path, secrets: Path) -> None:
    # As `echo` writes it, with a newline; and the rest of the section still comes from TOML.
    (secrets / "sftp__password").write_text(SECRET + "\n", encoding="utf-8")
    (secrets / "KAFKA__SASL_PASSWORD").write_text("sasl", encoding="utf-8")
    settings = load_settings(write_config(tmp_path, SFTP))
    assert settings.sftp is not None
    assert settings.sftp.password is not None
    assert settings.sftp.password.get_secret_value() == SECRET
    assert settings.sftp.host == "sftp.example"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "sasl"


def test_the_secret_file_wins_over_the_config_file(tmp_path: Path, secrets: Path) -> None:
    (secrets / "sftp__password").write_text(SECRET, encoding="utf-8")
    config = write_config(tmp_path, SFTP + 'password = "from-toml"\n')
    settings = load_settings(config)
    assert settings.sftp is not None
    assert settings.sftp.password is not None
    assert settings.sftp.password.get_secret_value() == SECRET


def test_the_environment_wins_over_the_secret_file(
    tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets / "sftp__password").write_text(SECRET, encoding="utf-8")
    monkeypatch.setenv("VARIANCE_SYNC_SFTP__PASSWORD", "from-env")
    settings = load_settings(write_config(tmp_path, SFTP))
    assert settings.sftp is not None
    assert settings.sftp.password is not None
    assert settings.sftp.password.get_secret_value() == "from-env"


def test_without_the_variable_no_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VARIANCE_SYNC_SECRETS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sftp__password").write_text(SECRET, encoding="utf-8")
    settings = load_settings(write_config(tmp_path, SFTP))
    assert settings.sftp is not None
    assert settings.sftp.password is None


def test_files_that_name_no_setting_are_ignored(tmp_path: Path, secrets: Path) -> None:
    # A compose or Kubernetes secrets mount holds other secrets too (a private key).
    (secrets / "sftp_client_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert load_settings(write_config(tmp_path, SFTP)).sftp is not None


def test_the_secret_never_appears_in_repr_or_the_redacted_dump(
    tmp_path: Path, secrets: Path
) -> None:
    (secrets / "sftp__password").write_text(SECRET, encoding="utf-8")
    settings = load_settings(write_config(tmp_path, SFTP))
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.redacted())


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("kafka__partitions", "kafka.partitions"),
        ("kafka__sasl_mechanism", "kafka.sasl_mechanism"),
        ("sftp__passwrd", "sftp.passwrd"),
    ],
)
def test_a_bad_secret_file_is_named_without_its_value(
    tmp_path: Path, secrets: Path, name: str, field: str
) -> None:
    (secrets / name).write_text(SECRET, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, SFTP))
    message = str(caught.value)
    assert message.startswith(f"secret file {secrets / name}: {field}: ")
    assert SECRET not in message
    assert "\n" not in message


def test_a_missing_secrets_directory_is_one_line(tmp_path: Path, secrets: Path) -> None:
    secrets.rmdir()
    with pytest.raises(ConfigError, match=r"^environment variable VARIANCE_SYNC_SECRETS_DIR: "):
        load_settings(write_config(tmp_path, SFTP))


def test_the_cli_exits_2_with_one_line_and_no_secret(
    tmp_path: Path, secrets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (secrets / "kafka__partitions").write_text(SECRET, encoding="utf-8")
    assert main(["worker", "--config", str(write_config(tmp_path, SFTP))]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1
    assert "kafka__partitions" in captured.err
    assert SECRET not in captured.err + captured.out
