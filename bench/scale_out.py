"""B7: the B2 backlog through one worker and through two workers of one group, in one run.

Each run has its own group and SFTP folder, committed at the inputs' ends before its
workers start. **Both workers have joined before the clock starts**: the benchmark waits
until every worker's `/ready` answers and the broker describes the group as `Stable`
with as many members as workers; only then does it publish the backlog, and the clock
starts with the first event sent. It stops when the last expected row is in `csv/`. The
publishing overlaps the consuming (as live traffic would), the same way for one worker
and for two.

Reported: the rate of each (domain events and Kafka messages per second), the wall-clock
ratio two/one, and CPU seconds per 1,000 events summed over the workers (from
`/proc/<pid>/stat`, over the clocked interval): two workers that spend no more CPU per
event than one are what scaling on more cores rests on. Meant for Apache Kafka
(`BENCH_BROKER=kafka`), the broker retailers run; on Tansu it runs too.
"""

from __future__ import annotations

import asyncio
import os
import time

from bench.latency import start_at_the_end
from bench.stack import BenchStack, Child, bench_stack, run_id, wait_ready, wait_until
from bench.stats import Figure, report
from bench.workload import Backlog, build_backlog
from streams.kafka.offsets import OffsetReader

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TIMEOUT = 900.0
JOIN_TIMEOUT = 120.0


async def drain(stack: BenchStack, backlog: Backlog, workers: int) -> tuple[float, float, float]:
    """Seconds from the first event sent until the last row is in `csv/`, the CPU
    seconds the workers spent meanwhile, and the seconds the publishing took."""
    run = run_id(f"b7-{workers}w")
    group = f"bench-{run}"
    await start_at_the_end(stack, group)
    children: list[Child] = []
    try:
        for n in range(workers):
            env = stack.worker_env(
                run,
                VARIANCE_SYNC_BATCHING__WINDOW_SECONDS="1",  # as B2
                VARIANCE_SYNC_WORKER__DATA_DIR=str(stack.root / run / f"worker-{n}"),
            )
            child = stack.start(["-m", "streams.cli", "worker"], env, f"{run}-{n}")
            children.append(child)
            await wait_ready(child, env)
        await joined(stack, group, workers, children[0])
        cpu_before = sum(child.cpu_seconds() for child in children)
        started = time.monotonic()
        await stack.publish(backlog.events)
        published = time.monotonic()
        done = await wait_until(
            lambda: stack.csv_rows(run) >= backlog.rows, children[0], TIMEOUT, "the last CSV row"
        )
        cpu = sum(child.cpu_seconds() for child in children) - cpu_before
        return done - started, cpu, published - started
    finally:
        for child in children:
            child.kill()


async def joined(stack: BenchStack, group: str, members: int, child: Child) -> None:
    """Wait until the broker describes `group` as Stable with `members` members."""
    async with OffsetReader(stack.settings.kafka) as reader:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < deadline:
            state = await reader.group_state(group)
            if state.state == "Stable" and len(state.members) == members:
                return
            child.check_alive()
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{group} did not settle with {members} members")


async def measure() -> None:
    async with bench_stack() as stack:
        backlog = build_backlog(EVENTS, stack.netsuite)
        seconds: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        publishing: list[float] = []
        for _ in range(RUNS):
            for workers in (1, 2):
                wall, used, sent = await drain(stack, backlog, workers)
                seconds[workers].append(wall)
                cpu[workers].append(used)
                publishing.append(sent)
    figures = [Figure.of("B7 publishing the backlog (within the clock)", "s", publishing)]
    for workers in (1, 2):
        name = f"B7 {workers} worker{'s' if workers > 1 else ''}"
        figures += [
            Figure.of(name, "events/s", [backlog.domain_events / s for s in seconds[workers]]),
            Figure.of(name, "messages/s", [backlog.messages / s for s in seconds[workers]]),
            Figure.of(
                f"{name}, CPU per 1,000 events",
                "CPU s",
                [1000 * c / backlog.domain_events for c in cpu[workers]],
            ),
        ]
    one, two = figures[1], figures[4]
    report(
        "b7-scale-out",
        figures,
        {
            "two/one (rate)": two.median / one.median,
            "two/one (CPU per event)": figures[6].median / figures[3].median,
            "backlog domain events": backlog.domain_events,
            "backlog Kafka messages": backlog.messages,
        },
    )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
