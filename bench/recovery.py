"""B4 and B5: recovery after kill -9, and the footprint of a large table (RocksDB store).

A worker builds a table of BENCH_POSITIONS positions (default 1,000,000: 200 stores with
equal shares of products) from counts that change nothing in NetSuite, so that only the
table is measured. B5 is its peak RSS and on-disk store size. B4 then kills a worker with
SIGKILL and starts a replacement on the same data folder, as an orchestrator restarts a
pod with its volume, and times it until it is ready and its group has caught up; three
times in a row.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.stack import BenchStack, Child, bench_stack, run_id, wait_ready
from bench.stats import Figure, report
from bench.workload import facilities
from schemas.models import CountApproved, CountLine
from streams.kafka.offsets import OffsetReader

POSITIONS = int(os.environ.get("BENCH_POSITIONS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LINES = 250
BUILD_LIMIT = 7_200.0


def neutral_counts(positions: int) -> list[CountApproved]:
    """Counts that match the system quantity: a position each, and no CSV row."""
    stores = sorted(facilities())
    per_store = -(-positions // len(stores))
    counts: list[CountApproved] = []
    for store in stores:
        for first in range(0, per_store, LINES):
            lines = tuple(
                CountLine(
                    product_id=str(100_000 + n),
                    netsuite_item_id=str(500_000 + n),
                    counted_quantity=5,
                    system_quantity=5,
                    variance_quantity=0,
                )
                for n in range(first, min(first + LINES, per_store))
            )
            counts.append(
                CountApproved(
                    event_id=str(uuid.uuid4()),
                    occurred_at=datetime.now(UTC),
                    facility_id=store,
                    count_id=f"CC{len(counts)}",
                    approved_by="bench",
                    lines=lines,
                )
            )
    return counts


async def wait_caught_up(stack: BenchStack, child: Child, group: str, limit: float) -> float:
    """Wait until the group's committed offsets reach every input high watermark."""
    deadline = time.monotonic() + limit
    async with OffsetReader(stack.settings.kafka) as reader:
        tps = await stack.input_partitions(reader)
        while True:
            committed = await reader.committed(group, tps)
            marks = await reader.high_watermarks(tps)
            if all((committed[tp] or 0) >= marks[tp] for tp in tps):
                return time.monotonic()
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not catch up within {limit:.0f}s")
            await asyncio.sleep(0.2)


def peak_rss_bytes(child: Child) -> int:
    for line in Path(f"/proc/{child.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def store_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


async def measure() -> None:
    async with bench_stack() as stack:
        run = run_id("b4")
        env = stack.worker_env(run, VARIANCE_SYNC_WORKER__STORE="rocksdb")
        group = env["VARIANCE_SYNC_KAFKA__GROUP_ID"]
        worker = stack.start(["-m", "streams.cli", "worker"], env, f"{run}-build")
        await wait_ready(worker, env)
        idle_rss = peak_rss_bytes(worker)
        await stack.publish(neutral_counts(POSITIONS))
        await wait_caught_up(stack, worker, group, BUILD_LIMIT)
        rss = [peak_rss_bytes(worker)]
        recovery: list[float] = []
        for attempt in range(RUNS):
            worker.kill()
            started = time.monotonic()
            worker = stack.start(["-m", "streams.cli", "worker"], env, f"{run}-{attempt}")
            await wait_ready(worker, env, limit=600)
            recovery.append(await wait_caught_up(stack, worker, group, 600) - started)
            rss.append(peak_rss_bytes(worker))
        worker.kill()
        disk = store_bytes(Path(env["VARIANCE_SYNC_WORKER__DATA_DIR"]))
    per_position = [(r - idle_rss) / POSITIONS for r in rss]
    report(
        "b4-b5-recovery-footprint",
        [
            Figure.of("B4 kill -9 to ready and caught up", "s", recovery),
            Figure.of("B5 peak RSS", "MiB", [r / 2**20 for r in rss]),
            Figure.of("B5 RSS per position above an idle worker", "bytes", per_position),
        ],
        {
            "positions": POSITIONS,
            "idle worker RSS MiB": idle_rss / 2**20,
            "store on disk MiB": disk / 2**20,
            "store bytes per position": disk / POSITIONS,
        },
    )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
