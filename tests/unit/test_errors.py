"""Every error that `streams` defines derives from `StreamsError`, and says whether trying
again can succeed: a new root, or a flag flipped by accident, fails here."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from streams.config import ConfigError
from streams.core.decision import Rejected
from streams.core.pending import GapRefused
from streams.core.routing import UnroutableEvent
from streams.devstack.local_broker import BrokerStartError, PortInUseError
from streams.errors import StreamsError, UsageError
from streams.kafka.broker import BrokerError
from streams.netsuite.import_rules import FileRejected
from streams.producer.client import PublishFailed, PublishRefused
from streams.worker.changelog_writer import ChangelogWriteFailed, Fenced

STREAMS = Path(__file__).parents[2] / "streams"


def streams_errors() -> list[type[BaseException]]:
    """Every exception class defined at the top level of a module under streams/."""
    found = []
    for path in sorted(STREAMS.rglob("*.py")):
        parts = path.relative_to(STREAMS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        module = importlib.import_module(name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
        ]
    return found


def test_every_streams_error_derives_from_the_one_root() -> None:
    errors = streams_errors()
    assert len(errors) >= 10, "the walk found too few errors to mean anything"
    strays = [f"{e.__module__}.{e.__qualname__}" for e in errors if not issubclass(e, StreamsError)]
    assert strays == [], f"derive these from streams.errors.StreamsError: {strays}"


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        # The broker away, a produce that was not acknowledged, a failed changelog flush,
        # a port taken meanwhile: trying again later can succeed.
        (BrokerError, True),
        (PublishFailed, True),
        (ChangelogWriteFailed, True),
        (PortInUseError, True),
        # Nothing changes by itself: fix the input, the config, the host or the code.
        (StreamsError, False),
        (UsageError, False),
        (ConfigError, False),
        (PublishRefused, False),
        (Fenced, False),
        (BrokerStartError, False),
        (GapRefused, False),
        (Rejected, False),
        (UnroutableEvent, False),
        (FileRejected, False),
    ],
)
def test_each_error_says_whether_trying_again_can_succeed(
    error: type[StreamsError], retriable: bool
) -> None:
    assert error.retriable is retriable
