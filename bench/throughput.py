"""B1 and B2: how fast the backlog is consumed, against the platform's ceilings.

B1a: raw aiokafka consumption of the backlog. B1b: the naive Faust agent counting each
message into a Table (`bench.faust_count`). B2: our worker, from its start until the last
CSV row is visible in `csv/`, on the memory store (as B1b) and on RocksDB (as production).
All read the same backlog in the same run; rates are given in domain events (count lines
plus logged variances) and in Kafka messages per second, so the ratios compare time to
drain one backlog.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.stack import BROKER, BenchStack, bench_stack, run_id, wait_until
from bench.stats import Figure, report
from bench.workload import Backlog, build_backlog
from streams.kafka.broker import TopicNames

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TIMEOUT = 900.0


async def raw_consume(stack: BenchStack, backlog: Backlog) -> float:
    """B1a: seconds for aiokafka to fetch every message of the backlog."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, partition)
            for topic in TopicNames.from_config(stack.settings.kafka).inputs
            # As created; Kafka's consumer has no metadata for a topic it never asked about.
            for partition in range(stack.settings.kafka.partitions)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < backlog.messages:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    return time.monotonic() - started


async def faust_count(stack: BenchStack, backlog: Backlog) -> float:
    """B1b: seconds from starting the naive counting agent until it counted everything."""
    run = run_id("count")
    marker = stack.root / f"{run}.done"
    env = {
        "BENCH_EXPECT": str(backlog.messages),
        "BENCH_MARKER": str(marker),
        "BENCH_BOOTSTRAP": stack.bootstrap,
        "BENCH_GROUP": run,
        "BENCH_DATADIR": str(stack.root / run),
        "BENCH_BROKER": BROKER,
    }
    started = time.monotonic()
    child = stack.start(["-m", "bench.faust_count", "worker"], env, run)
    try:
        done = await wait_until(marker.exists, child, TIMEOUT, "the counting agent")
    finally:
        child.kill()
    return done - started


async def pipeline(stack: BenchStack, backlog: Backlog, store: str = "memory") -> float:
    """B2: seconds from starting our worker until every expected row is in `csv/`. On
    the memory store, as B1b's agent uses; on RocksDB, as production runs."""
    run = run_id(f"b2-{store}")
    started = time.monotonic()
    child = stack.start_worker(
        run,
        VARIANCE_SYNC_BATCHING__WINDOW_SECONDS="1",
        VARIANCE_SYNC_WORKER__STORE=store,
    )
    try:
        done = await wait_until(
            lambda: stack.csv_rows(run) >= backlog.rows, child, TIMEOUT, "the last CSV row"
        )
    finally:
        child.kill()
    return done - started


async def measure() -> None:
    async with bench_stack() as stack:
        backlog = build_backlog(EVENTS, stack.netsuite)
        await stack.publish(backlog.events)
        seconds: dict[str, list[float]] = {"b1a": [], "b1b": [], "b2": [], "b2r": []}
        for _ in range(RUNS):
            seconds["b1a"].append(await raw_consume(stack, backlog))
            seconds["b1b"].append(await faust_count(stack, backlog))
            seconds["b2"].append(await pipeline(stack, backlog))
            seconds["b2r"].append(await pipeline(stack, backlog, store="rocksdb"))
    names = {
        "b1a": "B1a raw aiokafka consume",
        "b1b": "B1b Faust agent counting into a Table",
        "b2": "B2 variance-sync end to end (memory store)",
        "b2r": "B2 variance-sync end to end (RocksDB)",
    }
    figures = {
        name: Figure.of(label, "events/s", [backlog.domain_events / s for s in seconds[name]])
        for name, label in names.items()
    }
    messages = [
        Figure.of(label, "messages/s", [backlog.messages / s for s in seconds[name]])
        for name, label in names.items()
    ]
    rows = [backlog.rows / s for s in seconds["b2"]]
    b2_rows = Figure.of("B2 rows visible in csv/ (memory store)", "rows/s", rows)
    b1a, b1b, b2, b2r = (figures[name] for name in names)
    report(
        "b1-b2-throughput",
        [*figures.values(), *messages, b2_rows],
        {
            "B2/B1b": b2.median / b1b.median,
            "B2 (RocksDB)/B1b": b2r.median / b1b.median,
            "B2/B1a": b2.median / b1a.median,
            "backlog domain events": backlog.domain_events,
            "backlog Kafka messages": backlog.messages,
            "backlog CSV rows": backlog.rows,
        },
    )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
