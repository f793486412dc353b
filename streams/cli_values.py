"""Values every command takes in the same form: broker lists, topic names and numbers.

Pure functions; the argparse types wrap them so that a bad value is argparse's one line.
"""

from __future__ import annotations

import argparse
import math

from schemas.models import EventKind
from streams.config import TopicsConfig, check_bootstrap
from streams.errors import UsageError

# Short names for the configured topics; the full configured name is accepted too.
SHORT_TOPICS: dict[str, str] = {
    "count-approved": "count_approved",
    "variance-logged": "variance_logged",
    "dlq": "dlq",
    "dlq-redrives": "dlq_redrives",
    "status": "status",
}


def add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    """`--bootstrap`, the same for every command that talks to Kafka."""
    parser.add_argument(
        "--bootstrap",
        type=bootstrap_arg,
        default=None,
        metavar="HOST:PORT",
        help=(
            "broker list, overriding $VARIANCE_SYNC_KAFKA__BOOTSTRAP, $KAFKA_BOOTSTRAP "
            "and the config's kafka.bootstrap (default localhost:9092)"
        ),
    )


def bootstrap_arg(text: str) -> str:
    """argparse type for `--bootstrap`."""
    try:
        return check_bootstrap(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resolve_topic(name: str, topics: TopicsConfig) -> str:
    """The topic a `--topic` value names: a short name (`count-approved`) maps through the
    config, anything else is taken as a full topic name."""
    field = SHORT_TOPICS.get(name)
    return getattr(topics, field) if field is not None else name


def input_kind(name: str, topics: TopicsConfig) -> EventKind:
    """The event kind of the input topic `name` (short or full), for `publish`."""
    resolved = resolve_topic(name, topics)
    kinds = {
        topics.count_approved: EventKind.COUNT_APPROVED,
        topics.variance_logged: EventKind.VARIANCE_LOGGED,
    }
    if resolved not in kinds:
        known = ", ".join([*(kind.value for kind in EventKind), *kinds])
        raise UsageError(f"--topic {name!r} is not an input topic; use one of {known}")
    return kinds[resolved]


def positive_number(text: str) -> float:
    """argparse type for seconds, minutes and the like: a finite number above 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_number(text: str) -> float:
    """argparse type for a finite number of 0 or more."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    # float() takes "nan" and "inf": a wait of nan seconds never ends, and nan compares
    # false with every threshold.
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
