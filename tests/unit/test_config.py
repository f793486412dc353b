from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import DEFAULT_CONFIG, ConfigError, load_settings
from streams.destination_factory import make_destination
from tests.factories import SAMPLE_TOML, make_settings, write_config


def test_the_packaged_sample_config_is_valid_and_needs_an_sftp_section_to_publish() -> None:
    with pytest.raises(
        ConfigError, match=r"publish.destination is 'sftp' but there is no \[sftp\] section"
    ):
        make_destination(load_settings(DEFAULT_CONFIG))
    settings = load_settings(
        DEFAULT_CONFIG,
        {
            "sftp": {
                "host": "sftp.example.com",
                "username": "netsuite",
                "known_hosts": "/etc/known_hosts",
            }
        },
    )
    assert settings.netsuite.variance_locations == {"VAR_DAMAGED": "1099", "VAR_STOLEN": "1098"}
    assert settings.batching.window_seconds == 60
    assert settings.batching.max_rows == 10_000


def test_environment_overrides_the_file_and_overrides_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VARIANCE_SYNC_BATCHING__WINDOW_SECONDS", "5")
    monkeypatch.setenv("VARIANCE_SYNC_KAFKA__BOOTSTRAP", "kafka:9092")
    assert make_settings(tmp_path).batching.window_seconds == 5
    assert make_settings(tmp_path).kafka.bootstrap == "kafka:9092"
    overridden = make_settings(tmp_path, {"batching": {"window_seconds": 2}})
    assert overridden.batching.window_seconds == 2
    assert overridden.batching.max_rows == 10_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "[batching]\nwindow_seconds = -1\n",
            "batching.window_seconds: Input should be greater than 0",
        ),
        (
            "[batching]\nmax_rows = 30000\n",
            "batching.max_rows: Input should be less than or equal to 25000",
        ),
        ("[batching]\nwindw_seconds = 3\n", "batching.windw_seconds: unknown setting"),
    ],
)
def test_bad_values_name_the_field_in_one_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, extra=extra)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_unknown_time_zone_and_bad_prefix_are_reported(tmp_path: Path) -> None:
    bad = SAMPLE_TOML.replace('"America/Chicago"', '"America/Chicag"').replace('"acme"', '"ac/me"')
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, base=bad))
    assert "netsuite.timezone: unknown time zone 'America/Chicag'" in str(caught.value)
    assert "netsuite.file_prefix:" in str(caught.value)


def test_a_zone_database_folder_is_an_unknown_time_zone(tmp_path: Path) -> None:
    bad = SAMPLE_TOML.replace('"America/Chicago"', '"US"')
    with pytest.raises(ConfigError, match=r"netsuite\.timezone: unknown time zone 'US'"):
        load_settings(write_config(tmp_path, base=bad))


def test_a_config_file_that_cannot_be_read_as_text_is_one_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'# caf\xe9\n[kafka]\nbootstrap = "x:9092"\n')
    with pytest.raises(ConfigError, match=r"latin.toml: not UTF-8 text"):
        load_settings(latin)
    plain = tmp_path / "plain"
    plain.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plain/config.toml: Not a directory"):
        load_settings(plain / "config.toml")


def test_a_json_value_in_the_environment_that_does_not_parse_names_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VARIANCE_SYNC_KAFKA", "notjson")
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path)
    assert str(caught.value).startswith('environment: error parsing value for field "kafka"')


def test_a_variance_location_for_an_unsynced_reason_is_rejected(tmp_path: Path) -> None:
    bad = SAMPLE_TOML.replace('VAR_STOLEN = "1098"', 'VAR_STOLEN = "1098"\nVAR_SAMPLE = "1097"')
    with pytest.raises(ConfigError, match="maps VAR_SAMPLE but synced_reasons does not list it"):
        load_settings(write_config(tmp_path, base=bad))


def test_internal_ids_must_be_numeric(tmp_path: Path) -> None:
    bad = SAMPLE_TOML.replace('subsidiary_id = "1"', 'subsidiary_id = "ACME"')
    with pytest.raises(ConfigError, match=r"netsuite\.subsidiary_id: String should match pattern"):
        load_settings(write_config(tmp_path, base=bad))


def test_file_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[netsuite\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(broken)


def test_secrets_are_masked_in_the_redacted_dump(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {"kafka": {"sasl_password": "hunter2"}})
    assert settings.kafka.sasl_password is not None
    assert "hunter2" not in str(settings.redacted())
    assert "hunter2" not in repr(settings)


def test_a_bad_environment_variable_is_named_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VARIANCE_SYNC_BATCHING__WINDOW_SECONDS", "abc")
    config = write_config(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(
        "environment variable VARIANCE_SYNC_BATCHING__WINDOW_SECONDS: batching.window_seconds: "
    )
    assert str(config) not in message
