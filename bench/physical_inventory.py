"""B8: a chain-wide physical inventory through two workers, start to last row.

The workload: every one of 1,000 stores counts its shelves in approved counts of 400 to
600 lines, `BENCH_B8_LINES` (2,000,000) lines in all, drawn by `make run`'s sample
generator: about 30 % of lines differ from the system quantity, as in the benchmark
backlog. The counts are published before the workers start (outside the clock). Then two
workers of one fresh group start together on RocksDB, as production runs, with their
default batching (a 60 s window, files of at most 10,000 rows); the clock runs from
their start until the last expected row is in `csv/`.

Reported: time to the last row and the rate, each worker's peak RSS (`VmHWM`), and rows
per file in `csv/` (NetSuite's import takes at most 25,000 rows a file). Meant for
Apache Kafka (`BENCH_BROKER=kafka`). One run by default (`BENCH_RUNS`).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Iterator

from bench.recovery import peak_rss_bytes
from bench.stack import BenchStack, Child, bench_stack, run_id, wait_until
from bench.stats import Figure, report
from bench.workload import PRODUCTS, exported, facilities
from schemas.models import CountApproved
from sinks.csv_render import NETSUITE_MAX_ROWS
from sinks.feeds import FEEDS
from streams.devstack.sample import Catalog, SampleGenerator
from streams.producer.client import VarianceProducer

STORES = 1_000
LINES = int(os.environ.get("BENCH_B8_LINES", "2000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))
TIMEOUT = 3600.0
WORKERS = 2


def physical_inventory(lines: int, seed: int = 8) -> Iterator[CountApproved]:
    """Approved counts of 400 to 600 lines over every store in turn, `lines` in all."""
    rng = random.Random(seed)
    catalog = Catalog.build(facilities(STORES), PRODUCTS, rng)
    generator = SampleGenerator(catalog, rng, lines_per_count=(400, 600))
    made = 0
    while made < lines:
        count = generator.count()
        made += len(count.lines)
        yield count


async def publish(stack: BenchStack, lines: int) -> tuple[int, int, int]:
    """Publish the physical inventory; return its messages, lines and expected rows."""
    messages = counted = rows = 0
    async with VarianceProducer(kafka=stack.settings.kafka) as producer:
        for count in physical_inventory(lines):
            await producer.publish_many([count])
            messages += 1
            counted += len(count.lines)
            rows += len(exported(count, stack.netsuite))
    return messages, counted, rows


async def one_run(stack: BenchStack, rows: int) -> tuple[float, list[int], list[int]]:
    run = run_id("b8")
    workers: list[Child] = []
    started = time.monotonic()
    try:
        for n in range(WORKERS):
            env = stack.worker_env(
                run,
                VARIANCE_SYNC_WORKER__STORE="rocksdb",
                VARIANCE_SYNC_WORKER__DATA_DIR=str(stack.root / run / f"worker-{n}"),
            )
            workers.append(stack.start(["-m", "streams.cli", "worker"], env, f"{run}-{n}"))
        done = await wait_until(
            lambda: stack.csv_rows(run) >= rows, workers[0], TIMEOUT, "the last CSV row"
        )
        return done - started, [peak_rss_bytes(w) for w in workers], rows_per_file(stack, run)
    finally:
        for worker in workers:
            worker.kill()


def rows_per_file(stack: BenchStack, run: str) -> list[int]:
    files = [
        path for feed in FEEDS for path in (stack.sftp.root / run / feed.csv_dir).glob("*.csv")
    ]
    return [max(0, path.read_bytes().count(b"\n") - 1) for path in files]


async def measure() -> None:
    async with bench_stack(stores=STORES) as stack:
        messages, lines, rows = await publish(stack, LINES)
        seconds: list[float] = []
        rss: list[float] = []
        per_file: list[int] = []
        for _ in range(RUNS):
            took, peaks, files = await one_run(stack, rows)
            seconds.append(took)
            rss += [peak / 2**20 for peak in peaks]
            per_file += files
    if max(per_file) > NETSUITE_MAX_ROWS:
        raise SystemExit(f"a file holds {max(per_file)} rows, over NetSuite's {NETSUITE_MAX_ROWS}")
    report(
        "b8-physical-inventory",
        [
            Figure.of("B8 start to last row in csv/", "s", seconds),
            Figure.of("B8 count lines", "lines/s", [lines / s for s in seconds]),
            Figure.of("B8 peak RSS per worker", "MiB", rss),
            Figure.of("B8 rows per file", "rows", [float(n) for n in per_file]),
        ],
        {
            "count lines": lines,
            "Kafka messages": messages,
            "CSV rows": rows,
            "files": len(per_file),
            "largest file (rows)": max(per_file),
            "median file (rows)": statistics.median(per_file),
        },
    )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
