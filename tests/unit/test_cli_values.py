"""Topic names take one form in every command: the short name or the configured one."""

from __future__ import annotations

import argparse

import pytest

from schemas.models import EventKind
from streams.cli_values import SHORT_TOPICS, bootstrap_arg, input_kind, resolve_topic
from streams.config import TopicsConfig
from streams.errors import UsageError

TOPICS = TopicsConfig(count_approved="acme.counts", variance_logged="acme.variances")


def test_short_names_map_through_the_config() -> None:
    assert resolve_topic("count-approved", TOPICS) == "acme.counts"
    assert resolve_topic("variance-logged", TOPICS) == "acme.variances"
    assert resolve_topic("dlq", TOPICS) == TOPICS.dlq


def test_every_short_name_names_a_configured_topic() -> None:
    assert set(SHORT_TOPICS.values()) == set(TopicsConfig.model_fields)


def test_full_names_pass_unchanged() -> None:
    assert resolve_topic("acme.counts", TOPICS) == "acme.counts"
    assert resolve_topic("someone.elses", TOPICS) == "someone.elses"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("count-approved", EventKind.COUNT_APPROVED),
        ("acme.counts", EventKind.COUNT_APPROVED),
        ("variance-logged", EventKind.VARIANCE_LOGGED),
        ("acme.variances", EventKind.VARIANCE_LOGGED),
    ],
)
def test_publish_takes_either_form_of_an_input(name: str, kind: EventKind) -> None:
    assert input_kind(name, TOPICS) is kind


@pytest.mark.parametrize("name", ["dlq", "acme.dlq-ish", "hotwax.inventory.count-approved"])
def test_publish_refuses_anything_but_an_input(name: str) -> None:
    with pytest.raises(UsageError, match=f"--topic '{name}' is not an input topic; use one of"):
        input_kind(name, TOPICS)


def test_the_bootstrap_flag_type_is_argparse_s_one_line() -> None:
    assert bootstrap_arg("a:1,b:2") == "a:1,b:2"
    with pytest.raises(argparse.ArgumentTypeError, match="'a:x': port 'x' is not a number"):
        bootstrap_arg("a:x")
