"""`variance-sync publish FILE.jsonl`: validate every line, then send them all.

Nothing from the file is sent while any line is invalid, unless `--skip-invalid`. `-`
reads the events from standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas.exceptions import InvalidEvent
from schemas.models import EventKind, ValidationLimits
from streams.cli_values import add_bootstrap_option, input_kind
from streams.config import KafkaConfig, load_settings, resolve_bootstrap
from streams.errors import UsageError
from streams.kafka.broker import TopicNames
from streams.output import print_json, progress
from streams.producer.client import Delivery, Event, PublishFailed, VarianceProducer

EXIT_INVALID = 1
STDIN = Path("-")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("publish", help="publish JSON-lines events, Avro-encoded")
    parser.add_argument(
        "--topic",
        required=True,
        help="count-approved or variance-logged, or the full configured name of either",
    )
    add_bootstrap_option(parser)
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML config for topic names and limits"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="send the valid lines even if some are invalid"
    )
    parser.add_argument(
        "--format",
        choices=["avro", "json"],
        default="avro",
        help="message bodies: Avro single-object encoding (default) or JSON",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "file", type=Path, help="events, one JSON object per line; - for standard input"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(publish_file(args))


def read_lines(path: Path) -> list[str]:
    """The file's lines, or standard input's for `-`."""
    try:
        if path == STDIN:
            return sys.stdin.read().splitlines()
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        where = "standard input" if path == STDIN else str(path)
        raise UsageError(f"{where}: cannot read: {exc}") from None


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    reason: str


def read_events(
    path: Path, producer: VarianceProducer, kind: EventKind
) -> tuple[list[Event], list[LineProblem]]:
    events: list[Event] = []
    problems: list[LineProblem] = []
    for number, text in enumerate(read_lines(path), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(LineProblem(number, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(data, dict):
            problems.append(LineProblem(number, "not a JSON object"))
            continue
        try:
            events.append(producer.validate(kind, data))
        except InvalidEvent as exc:
            problems.append(LineProblem(number, exc.reason))
    return events, problems


CHUNK = 500


async def publish_in_chunks(producer: VarianceProducer, events: list[Event]) -> list[Delivery]:
    """All of `events`, a chunk at a time, so that a large file shows its progress."""
    deliveries: list[Delivery] = []
    with progress("publishing", len(events)) as advance:
        for start in range(0, len(events), CHUNK):
            chunk = events[start : start + CHUNK]
            deliveries += await producer.publish_many(chunk)
            advance(len(chunk))
    return deliveries


async def publish_file(args: argparse.Namespace) -> int:
    kafka, limits = KafkaConfig(), ValidationLimits()
    if args.config is not None:
        settings = load_settings(args.config)
        kafka = settings.kafka
        limits = ValidationLimits(
            max_abs_quantity=settings.validation.max_abs_quantity,
            max_future=settings.validation.max_future,
        )
    kind = input_kind(args.topic, kafka.topics)
    bootstrap = resolve_bootstrap(args.bootstrap, os.environ, kafka if args.config else None)
    producer = VarianceProducer(bootstrap, kafka=kafka, limits=limits, encoding=args.format)
    events, problems = read_events(args.file, producer, kind)
    source = "<stdin>" if args.file == STDIN else args.file
    for problem in problems:
        print(f"{source}:{problem.line}: {problem.reason}", file=sys.stderr)
    if problems and not args.skip_invalid:
        count = len(problems)
        hint = "use --skip-invalid to send the rest"
        print(f"variance-sync: {count} invalid line(s); nothing sent ({hint})", file=sys.stderr)
        return EXIT_INVALID
    try:
        async with producer:
            deliveries = await publish_in_chunks(producer, events)
    except PublishFailed as exc:
        print(f"variance-sync: error: {exc}", file=sys.stderr)
        return 2
    topic = TopicNames.from_config(kafka).for_kind(kind)
    if args.json:
        print_json(
            {
                "topic": topic,
                "sent": len(deliveries),
                "skipped_invalid": len(problems),
                "deliveries": [asdict(delivery) for delivery in deliveries],
            }
        )
        return 0
    skipped = f", skipped {len(problems)} invalid" if problems else ""
    print(f"sent {len(deliveries)} event(s) to {topic}{skipped}")
    return 0
