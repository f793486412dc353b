"""B3: latency under a steady load, from an event's publish to its row in `csv/`.

A worker with a 5 s window runs at steady state; events are published at 500 domain
events per second (the B2 mix, paced) for 60 s. The SFTP folders are polled every
100 ms, and each row's latency is the time its file was first seen minus the time its
event was published. The target is p99 <= window + 2 s.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import statistics
import time

from bench.stack import BenchStack, bench_stack, run_id, wait_ready, wait_until
from bench.stats import Figure, report
from bench.workload import build_backlog, exported
from schemas.models import CountApproved
from sinks.feeds import FEEDS
from streams.config import KafkaConfig
from streams.kafka.offsets import OffsetReader
from streams.producer.client import Event, VarianceProducer

RATE = 500
SECONDS = int(os.environ.get("BENCH_B3_SECONDS", "60"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WINDOW = 5.0
POLL = 0.1


class Watcher:
    """Notes when each reference first appears in `csv/`."""

    def __init__(self, stack: BenchStack, run: str) -> None:
        self._folders = [stack.sftp.root / run / feed.csv_dir for feed in FEEDS]
        self._read: set[str] = set()
        self.seen: dict[str, float] = {}

    def poll(self) -> None:
        now = time.monotonic()
        for folder in self._folders:
            for path in folder.glob("*.csv") if folder.is_dir() else ():
                if path.name in self._read:
                    continue
                self._read.add(path.name)
                rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
                for row in rows[1:]:
                    self.seen.setdefault(row[0], now)


async def one_run(stack: BenchStack, events: list[Event]) -> list[float]:
    run = run_id("b3")
    env = stack.worker_env(run, VARIANCE_SYNC_BATCHING__WINDOW_SECONDS=str(WINDOW))
    await start_at_the_end(stack, env["VARIANCE_SYNC_KAFKA__GROUP_ID"])
    child = stack.start(["-m", "streams.cli", "worker"], env, run)
    watcher = Watcher(stack, run)
    published: dict[str, float] = {}
    try:
        await wait_ready(child, env)
        async with VarianceProducer(kafka=KafkaConfig(bootstrap=stack.bootstrap)) as producer:
            poller = asyncio.create_task(_poll(watcher))
            try:
                # Routed before the clock starts, so pacing measures publishing only.
                planned = [(event, exported(event, stack.netsuite)) for event in events]
                await _paced(producer, planned, published)
                await wait_until(
                    lambda: published.keys() <= watcher.seen.keys(), child, 120, "the last row"
                )
            finally:
                poller.cancel()
    finally:
        child.kill()
    return [watcher.seen[ref] - at for ref, at in published.items()]


async def start_at_the_end(stack: BenchStack, group: str) -> None:
    """Commit the run's group at the inputs' ends. The topics are shared by the runs, and
    a worker starting from the earliest offset would first work through the traffic of
    the runs before it (the second run's p99 was 9 to 11 s for that alone)."""
    async with OffsetReader(stack.settings.kafka) as reader:
        await reader.commit(
            group, await reader.high_watermarks(await stack.input_partitions(reader))
        )


async def _poll(watcher: Watcher) -> None:
    while True:
        watcher.poll()
        await asyncio.sleep(POLL)


async def _paced(
    producer: VarianceProducer,
    planned: list[tuple[Event, list[str]]],
    published: dict[str, float],
) -> None:
    """Publish so that domain events leave at RATE per second on average."""
    started = time.monotonic()
    sent = 0
    for event, references in planned:
        due = started + sent / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await producer.publish(event)
        now = time.monotonic()
        for ref in references:
            published[ref] = now
        sent += len(event.lines) if isinstance(event, CountApproved) else 1


async def measure() -> None:
    latencies: list[list[float]] = []
    async with bench_stack() as stack:
        for number in range(RUNS):
            backlog = build_backlog(RATE * SECONDS, stack.netsuite, seed=30 + number)
            latencies.append(await one_run(stack, backlog.events))
    p50 = [statistics.median(run) for run in latencies]
    p99 = [statistics.quantiles(run, n=100)[98] for run in latencies]
    worst = [max(run) for run in latencies]
    report(
        "b3-latency",
        [
            Figure.of("B3 p50 publish -> row in csv/", "s", p50),
            Figure.of("B3 p99 publish -> row in csv/", "s", p99),
            Figure.of("B3 max publish -> row in csv/", "s", worst),
        ],
        {"window seconds": WINDOW, "target p99 (window + 2 s)": WINDOW + 2},
    )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
