"""Which broker `variance-sync publish` talks to."""

from __future__ import annotations

from streams.config import KafkaConfig
from streams.producer.publish_command import resolve_bootstrap

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
