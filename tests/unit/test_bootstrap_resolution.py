"""Which broker the commands talk to: `publish` and the ops commands alike."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.config import ConfigError, KafkaConfig, check_bootstrap, resolve_bootstrap
from streams.ops.common import settings_from
from tests.factories import write_config

CONFIG = KafkaConfig(bootstrap="from-config:9092")
ENV = {"VARIANCE_SYNC_KAFKA__BOOTSTRAP": "from-settings-env:9092", "KAFKA_BOOTSTRAP": "plain:9092"}


def test_the_flag_wins() -> None:
    assert resolve_bootstrap("flag:9092", ENV, CONFIG) == "flag:9092"


def test_then_the_settings_variable_that_stack_env_sets() -> None:
    assert resolve_bootstrap(None, ENV, CONFIG) == "from-settings-env:9092"


def test_then_kafka_bootstrap() -> None:
    assert resolve_bootstrap(None, {"KAFKA_BOOTSTRAP": "plain:9092"}, CONFIG) == "plain:9092"


def test_then_the_config_file_then_localhost() -> None:
    assert resolve_bootstrap(None, {}, CONFIG) == "from-config:9092"
    assert resolve_bootstrap(None, {}, None) == "localhost:9092"


def ops_bootstrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flag: str | None, **env: str
) -> str:
    for name in ("VARIANCE_SYNC_KAFKA__BOOTSTRAP", "KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path, '\n[kafka]\nbootstrap = "from-config:9092"\n')
    args = argparse.Namespace(config=config, bootstrap=flag)
    return settings_from(args).kafka.bootstrap


def test_the_ops_commands_resolve_it_the_same_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert ops_bootstrap(monkeypatch, tmp_path, "flag:9092", **ENV) == "flag:9092"
    assert ops_bootstrap(monkeypatch, tmp_path, None, **ENV) == "from-settings-env:9092"
    plain = ops_bootstrap(monkeypatch, tmp_path, None, KAFKA_BOOTSTRAP="plain:9092")
    assert plain == "plain:9092"
    assert ops_bootstrap(monkeypatch, tmp_path, None) == "from-config:9092"


@pytest.mark.parametrize(
    "good",
    [
        "localhost:9092",
        "127.0.0.1:1",
        "kafka-0.kafka.svc:9093,kafka-1.kafka.svc:9093",
        "compose_kafka_1:65535",
        "[::1]:9092",
        "a:1, b:2",
    ],
)
def test_well_formed_broker_lists_pass_unchanged(good: str) -> None:
    assert check_bootstrap(good) == good


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("notahost", "'notahost' has no port; expected HOST:PORT[,HOST:PORT...]"),
        ("host:abc", "'host:abc': port 'abc' is not a number"),
        ("127.0.0.1:99999", "'127.0.0.1:99999': port 99999 is not between 1 and 65535"),
        ("host:0", "'host:0': port 0 is not between 1 and 65535"),
        ("host:٣", "'host:٣': port '٣' is not a number"),
        ("", "is empty; expected HOST:PORT[,HOST:PORT...]"),
        ("a:1,", "'' has no port"),
        ("a:1,b", "'b' has no port"),
        (":9092", "'' is not a host name or IP address"),
        ("bad host:9092", "'bad host' is not a host name or IP address"),
        ("-x:9092", "'-x' is not a host name or IP address"),
        ("[::zz]:9092", "'[::zz]' is not a host name or IP address"),
        ("::1:9092", "'::1' is not a host name or IP address"),
    ],
)
def test_malformed_broker_lists_name_the_address(bad: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_bootstrap(bad)


@pytest.mark.parametrize(
    ("flag", "env", "origin"),
    [
        ("notahost", ENV, "--bootstrap"),
        (
            None,
            {"VARIANCE_SYNC_KAFKA__BOOTSTRAP": "host:abc"},
            "environment variable VARIANCE_SYNC_KAFKA__BOOTSTRAP",
        ),
        (None, {"KAFKA_BOOTSTRAP": "127.0.0.1:99999"}, "environment variable KAFKA_BOOTSTRAP"),
    ],
)
def test_resolving_a_malformed_one_names_where_it_came_from(
    flag: str | None, env: dict[str, str], origin: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(origin)}.*: bootstrap '"):
        resolve_bootstrap(flag, env, CONFIG)


def test_a_malformed_one_in_the_config_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="port 'abc' is not a number"):
        KafkaConfig(bootstrap="host:abc")
