"""Which broker the commands talk to: `publish` and the ops commands alike."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streams.config import KafkaConfig, resolve_bootstrap
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
