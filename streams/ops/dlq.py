"""`variance-sync dlq list|show|redrive`: inspect dead letters and send them back after a fix.

The DLQ has one partition, so an offset names a record. A re-drive does, per record:

1. send the record's key, value and headers (ours included: the worker turns the carried
   `variance-sync.error` into `variance-sync.previous-error` if the event fails again) to
   its source topic and partition, and wait for the broker's acknowledgement;
2. append a re-drive record, keyed by the DLQ offset, to the ledger topic
   (`kafka.topics.dlq_redrives`), which is how `list`, `show` and later re-drives know.

A crash between 1 and 2 leaves an event sent but not recorded, so a later re-drive sends
it again. That is harmless: the worker ignores a second copy of an event id it applied,
and a copy that fails again is just one more dead letter.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich import box
from rich.console import Console
from rich.table import Table

from streams.config import KafkaConfig, Settings
from streams.core.dead_letter import TRUNCATED_FROM, ErrorClass, find_header
from streams.kafka.broker import BrokerError, TopicNames, client_options, ensure_topics
from streams.kafka.offsets import OffsetReader
from streams.ops.common import add_connection_options, add_execute_option, settings_from
from streams.ops.dead_letter_groups import SourceEvent, select, source_events
from streams.ops.dead_letter_reader import (
    LIST_COLUMNS,
    UNKNOWN,
    DLQRecord,
    Redrive,
    counts,
    list_rows,
    matches,
    record_json,
    render_payload,
    show_bytes,
    target_partition,
    when,
)
from streams.ops.dead_letter_state import read_state
from streams.output import print_json, progress

CLASSES = [*(c.value for c in ErrorClass), UNKNOWN]

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("dlq", help="list, show and re-drive dead-lettered events")
    actions = parser.add_subparsers(dest="dlq_command", required=True)

    listing = actions.add_parser("list", help="dead letters with reasons, and counts by reason")
    add_connection_options(listing)
    _add_filters(listing)
    listing.add_argument("--json", action="store_true", help="print everything as JSON")

    show = actions.add_parser("show", help="everything about one dead letter")
    add_connection_options(show)
    show.add_argument("offset", type=_offset, metavar="N", help="the record's DLQ offset")
    show.add_argument("--json", action="store_true", help="print JSON")

    redrive = actions.add_parser(
        "redrive", help="send dead letters back to their source topic (a dry run unless --execute)"
    )
    add_connection_options(redrive)
    _add_filters(redrive)
    redrive.add_argument(
        "--offset",
        dest="offsets",
        type=_offset,
        nargs="+",
        action="extend",
        default=[],
        metavar="N",
        help="only these DLQ offsets",
    )
    add_execute_option(redrive, "send them")
    redrive.add_argument("--again", action="store_true", help="include records re-driven before")
    parser.set_defaults(handler=run)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="errors containing TEXT (any case)")
    parser.add_argument("--class", dest="error_class", choices=CLASSES, help="one error class")


def _offset(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a DLQ offset")
    return int(text)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    commands: dict[str, Command] = {"list": list_dlq, "show": show_dlq, "redrive": redrive_dlq}
    try:
        return asyncio.run(commands[args.dlq_command](args, settings))
    except KafkaError as exc:
        raise BrokerError(f"Kafka at {settings.kafka.bootstrap}: {exc}") from None


async def list_dlq(args: argparse.Namespace, settings: Settings) -> int:
    async with OffsetReader(settings.kafka) as reader:
        state = await read_state(reader, TopicNames.from_config(settings.kafka))
    events = source_events(state.records, state.redrives)
    shown = [e for e in events if matches(e.latest, args.reason, args.error_class)]
    by_class, by_reason = counts([event.latest for event in shown])
    if args.json:
        print_json(
            {
                "topic": state.topic,
                "total": len(events),
                "dead_letters": len(state.records),
                "records": [_event_json(event) for event in shown],
                "by_class": dict(by_class),
                "by_reason": dict(by_reason),
            }
        )
        return 0
    if not shown:
        print(f"{state.topic}: no dead letters" + (" match" if state.records else ""))
        return 0
    console = Console(markup=False, highlight=False)  # errors are data, never markup
    title = f"{state.topic}: {len(shown)} of {len(events)} source events"
    if len(state.records) != len(events):
        title += f" ({len(state.records)} dead letters, re-drives and copies included)"
    table = _table(title)
    for name in LIST_COLUMNS:
        table.add_column(name, justify="right" if name == "offset" else "left", no_wrap=True)
    rows = list_rows([e.latest for e in shown], [e.redrives for e in shown], console.width)
    for cells in rows:
        table.add_row(*cells)
    classes = _table("by error class")
    classes.add_column("count", justify="right")
    classes.add_column("class")
    for name, number in by_class.most_common():
        classes.add_row(str(number), name)
    reasons = _table("by reason")
    reasons.add_column("count", justify="right")
    reasons.add_column("reason", overflow="fold")
    for reason, number in by_reason.most_common():
        reasons.add_row(str(number), reason)
    console.print(table, classes, reasons)
    return 0


def _event_json(event: SourceEvent) -> dict[str, Any]:
    """The latest dead letter of a source event, with all of the event's re-drives."""
    return {**record_json(event.latest, event.redrives), "dead_letters": list(event.offsets)}


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


async def show_dlq(args: argparse.Namespace, settings: Settings) -> int:
    topics = TopicNames.from_config(settings.kafka)
    async with OffsetReader(settings.kafka) as reader:
        state = await read_state(reader, topics)
    record = state.record(args.offset)
    redrives = state.redrives_of(record)
    payload = render_payload(record, topics.kinds)
    if args.json:
        print_json(record_json(record, redrives, payload))
        return 0
    fields = {
        "record": f"{state.topic} offset {record.offset}",
        "failed at": when(record.failed_at),
        "error class": record.error_class or UNKNOWN,
        "error": record.error or UNKNOWN,
        "previous error": record.previous_error,
        "source": record.source_label,
        "key": show_bytes(record.key) or "(none)",
    }
    for label, value in fields.items():
        if value is not None:
            print(f"{label + ':':<16}{value}")
    print("\nheaders:")
    for name, raw in record.headers:
        print(f"  {name}: {show_bytes(raw)}")
    problem = f"; {payload.problem}" if payload.problem else ""
    print(f"\npayload ({payload.form}, {len(record.value)} bytes{problem}):")
    print(payload.text)
    print("\nre-drives:")
    for redrive in redrives:
        target = f"{redrive.target_topic}[{redrive.target_partition}]@{redrive.target_offset}"
        print(f"  {when(redrive.redriven_at)} -> {target}")
    if not redrives:
        print("  never re-driven")
    return 0


async def redrive_dlq(args: argparse.Namespace, settings: Settings) -> int:
    topics = TopicNames.from_config(settings.kafka)
    async with OffsetReader(settings.kafka) as reader:
        state = await read_state(reader, topics)
        for offset in args.offsets:
            state.record(offset)  # an offset that names nothing is a mistake: say so
        selection = select(
            source_events(state.records, state.redrives),
            topics.inputs,
            reason=args.reason,
            error_class=args.error_class,
            offsets=args.offsets,
            again=args.again,
        )
        for event in selection.no_source:
            source = event.latest.source_topic or UNKNOWN
            print(f"skipping {event.latest.offset}: source topic {source} is not an input")
        if selection.already:
            offsets = ", ".join(str(e.latest.offset) for e in selection.already)
            print(f"skipping already re-driven {offsets} (--again sends them again)")
        whole = []
        for event in selection.chosen:
            cut = find_header(event.latest.headers, TRUNCATED_FROM)
            if cut is None:
                whole.append(event)
                continue
            print(
                f"skipping {event.latest.offset}: its dead letter was cut to fit the DLQ "
                f"(the event was {cut.decode()} bytes); publish it again from its source"
            )
        if not whole:
            print("nothing to re-drive")
            return 0
        partitions = {t: len(await reader.partitions(t)) for t in topics.inputs}
        if not args.execute:
            for record in (event.latest for event in whole):
                partition = target_partition(record, partitions[record.source_topic or ""])
                where = f"{record.source_topic}[{'by key' if partition is None else partition}]"
                why = f"{record.error_class or UNKNOWN}: {record.error or UNKNOWN}"
                print(f"would re-drive {record.offset} -> {where}: {why}")
            print(f"dry run: {len(whole)} to re-drive; nothing sent (--execute sends them)")
            return 0
        if topics.dlq_redrives not in await reader.topics():
            # Workers create it too; this covers a re-drive before any worker ran this version.
            await ensure_topics(reader.admin, settings.kafka, {topics.dlq_redrives: 1})
    chosen = [event.latest for event in whole]
    sent = await send_back(settings.kafka, topics, chosen, partitions)
    print(f"re-drove {sent} record(s)")
    return 0


async def send_back(
    kafka: KafkaConfig,
    topics: TopicNames,
    records: Sequence[DLQRecord],
    partitions: Mapping[str, int],
) -> int:
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    try:
        await producer.start()
        with progress("re-driving", len(records)) as advance:
            for record in records:
                await _send_one(producer, topics, record, partitions)
                advance(1)
    finally:
        await producer.stop()
    return len(records)


async def _send_one(
    producer: AIOKafkaProducer,
    topics: TopicNames,
    record: DLQRecord,
    partitions: Mapping[str, int],
) -> None:
    topic = record.source_topic or ""
    meta = await producer.send_and_wait(
        topic,
        record.value,
        key=record.key,
        partition=target_partition(record, partitions[topic]),
        headers=list(record.headers),
    )
    redrive = Redrive(
        dlq_topic=topics.dlq,
        dlq_offset=record.offset,
        redriven_at=datetime.now(UTC),
        target_topic=meta.topic,
        target_partition=meta.partition,
        target_offset=meta.offset,
        error=record.error,
        error_class=record.error_class,
    )
    key, value = redrive.encode()
    await producer.send_and_wait(topics.dlq_redrives, value, key=key)
    done = f"{meta.topic}[{meta.partition}]@{meta.offset}"
    print(f"re-drove {record.offset} -> {done}", flush=True)  # progress, if it stops
