"""B9: what open consoles cost the worker they watch, at BENCH_POSITIONS positions.

One worker (RocksDB store) builds a table of BENCH_POSITIONS positions (default
1,000,000) from counts that change nothing in NetSuite (`bench.recovery`). Then, BENCH_RUNS
times, it consumes a further BENCH_CONSOLE_UPDATES count lines that update existing
positions, once with no console and once while BENCH_CONSOLE_TABS consoles (5) replay every
request `console.js` makes per refresh, at its refresh interval (the order alternates
between runs). Throughout each phase `/health` is polled and timed, both while idle (the
last 10 s of a 15 s settling time before the updates are sent, consoles under way) and
while busy (from the first update sent until the group has committed the last).
Reported: consumption rate and `/health` p50/p99 with and without the consoles, as
medians with their spread.

B9b, in process: the per-update cost of the running analytics totals, as the store
applies them (read the old position, decode it, move the totals), against the same store
writes without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import orjson
from rocksdict import Options, Rdict, WriteBatch

from bench.recovery import BUILD_LIMIT, neutral_counts, wait_caught_up
from bench.stack import BenchStack, Child, bench_stack, run_id, wait_ready
from bench.stats import Figure, report
from streams.core.analytics_totals import AnalyticsTotals
from streams.core.positions import Applied, Position, apply_change, position_key
from streams.core.routing import Change

POSITIONS = int(os.environ.get("BENCH_POSITIONS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
UPDATES = int(os.environ.get("BENCH_CONSOLE_UPDATES", "50000"))
TABS = int(os.environ.get("BENCH_CONSOLE_TABS", "5"))
MICRO_UPDATES = int(os.environ.get("BENCH_MICRO_UPDATES", "200000"))
CONSOLE_JS = Path(__file__).parent.parent / "streams" / "worker" / "console" / "console.js"
REFRESH_SECONDS = 5.0  # console.js's default
PROBE_SECONDS = 0.05
SETTLE_SECONDS = 3 * REFRESH_SECONDS
IDLE_SECONDS = 2 * REFRESH_SECONDS
PHASE_LIMIT = 1_800.0


def console_requests(script: str) -> list[str]:
    """The URLs console.js fetches per refresh: its SOURCES, read from the script itself so
    that a view added there is replayed here too."""
    block = re.search(r"const SOURCES = \{(.*?)\};", script, re.DOTALL)
    if block is None:
        raise SystemExit("bench: no SOURCES in console.js")
    return re.findall(r':\s*"(/[^"]*)"', block.group(1))


async def console_tab(
    session: aiohttp.ClientSession, base: str, urls: list[str], delay: float, stop: asyncio.Event
) -> int:
    """One open console: every view at once, then wait out the refresh interval, as
    console.js does (it schedules the next refresh once the last answer is drawn)."""
    await asyncio.sleep(delay)
    requests = 0
    while not stop.is_set():

        async def fetch(url: str) -> None:
            async with session.get(base + url) as response:
                if response.status != 200:
                    raise RuntimeError(f"{url} answered HTTP {response.status}")
                await response.read()

        await asyncio.gather(*(fetch(url) for url in urls))
        requests += len(urls)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
    return requests


async def probe_health(
    session: aiohttp.ClientSession, base: str, stop: asyncio.Event
) -> list[tuple[float, float]]:
    """(monotonic time sent, seconds to answer) per `/health` request, one at a time."""
    samples: list[tuple[float, float]] = []
    while not stop.is_set():
        sent, started = time.monotonic(), time.perf_counter()
        async with session.get(base + "/health") as response:
            await response.read()
        samples.append((sent, time.perf_counter() - started))
        await asyncio.sleep(PROBE_SECONDS)
    return samples


def percentiles_ms(
    samples: list[tuple[float, float]], start: float, end: float
) -> tuple[float, float]:
    """p50 and p99 of the answers to requests sent in [start, end], in ms."""
    cuts = statistics.quantiles([s for at, s in samples if start <= at <= end], n=100)
    return cuts[49] * 1000, cuts[98] * 1000


@dataclass(frozen=True)
class Phase:
    rate: float  # count lines per second
    idle_ms: tuple[float, float]  # /health p50, p99 before the updates are sent
    busy_ms: tuple[float, float]  # /health p50, p99 while they are consumed
    console_requests: int


async def phase(stack: BenchStack, worker: Child, base: str, group: str, consoles: bool) -> Phase:
    updates = neutral_counts(UPDATES)  # fresh event ids on existing positions
    urls = console_requests(CONSOLE_JS.read_text(encoding="utf-8")) if consoles else []
    stop = asyncio.Event()
    # Separate sessions: the probe never waits for a connection a console holds.
    async with aiohttp.ClientSession() as probe, aiohttp.ClientSession() as tabs:
        health = asyncio.create_task(probe_health(probe, base, stop))
        clients = [
            asyncio.create_task(console_tab(tabs, base, urls, n * REFRESH_SECONDS / TABS, stop))
            for n in range(TABS if consoles else 0)
        ]
        # The same settling time in both phases (the previous phase's publishing ends in
        # it); its last part, every tab under way, is the idle window.
        idle_from = time.monotonic() + SETTLE_SECONDS - IDLE_SECONDS
        await asyncio.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        await stack.publish(updates)
        done = await wait_caught_up(stack, worker, group, PHASE_LIMIT)
        stop.set()
        samples = await health
        requests = sum(await asyncio.gather(*clients))
    lines = sum(len(count.lines) for count in updates)
    return Phase(
        lines / (done - started),
        percentiles_ms(samples, idle_from, started),
        percentiles_ms(samples, started, done),
        requests,
    )


async def measure_load() -> dict[str, list[Phase]]:
    phases: dict[str, list[Phase]] = {"none": [], "consoles": []}
    async with bench_stack() as stack:
        run = run_id("b7")
        env = stack.worker_env(run, VARIANCE_SYNC_WORKER__STORE="rocksdb")
        group = env["VARIANCE_SYNC_KAFKA__GROUP_ID"]
        base = f"http://127.0.0.1:{env['VARIANCE_SYNC_WORKER__WEB_PORT']}"
        worker = stack.start(["-m", "streams.cli", "worker"], env, run)
        try:
            await wait_ready(worker, env)
            await stack.publish(neutral_counts(POSITIONS))
            await wait_caught_up(stack, worker, group, BUILD_LIMIT)
            for attempt in range(RUNS):
                # Alternate which goes first, so that a drift over the run favours neither.
                order = (False, True) if attempt % 2 == 0 else (True, False)
                for consoles in order:
                    found = await phase(stack, worker, base, group, consoles)
                    phases["consoles" if consoles else "none"].append(found)
        finally:
            worker.kill()
    return phases


def hook_cost(updates: int, seed: int = 7) -> tuple[list[float], list[float]]:
    """Updates per second through a RocksDB store's write path, without and with the
    running totals (the old position read back, decoded and diffed), three runs each."""
    rng = random.Random(seed)
    keys = [(f"STORE_{n % 200:03d}", str(100_000 + n)) for n in range(updates // 4)]
    days = [date(2024, 1, 1 + d).isoformat() for d in range(28)]
    plan = [
        (rng.choice(keys), rng.choice(("VAR_DAMAGED", "VAR_FOUND", "#")), rng.choice(days))
        for _ in range(updates)
    ]

    def run(totals: AnalyticsTotals | None, folder: Path) -> float:
        db = Rdict(str(folder), options=Options(raw_mode=True))
        if totals is not None:
            totals.track(0, [])
        positions: dict[str, Position] = {}
        started = time.perf_counter()
        batch = WriteBatch(raw_mode=True)
        for n, ((facility, product), reason, day) in enumerate(plan):
            counted = 5 if reason == "#" else None
            change = Change(
                facility_id=facility,
                product_id=product,
                location_id="1",
                item_id="2",
                quantity=-1 if counted is None else 0,
                counted_quantity=counted,
                export=None,
                reason_id=reason if counted is None else "CYCLE_COUNT",
                day=day,
            )
            source = Applied(str(n), datetime(2024, 1, 1, tzinfo=UTC), "t", n, n)
            key = position_key(facility, product)
            new = apply_change(positions.get(key), change, source).to_json()
            positions[key] = Position.from_json(new)
            raw_key = key.encode()
            if totals is not None:
                stored = db.get(raw_key)
                totals.replace(0, None if stored is None else orjson.loads(stored), new)
            batch.put(raw_key, orjson.dumps(new))
            if n % 500 == 499:  # the writer's batches are of this order
                db.write(batch)
                batch = WriteBatch(raw_mode=True)
        db.write(batch)
        elapsed = time.perf_counter() - started
        db.close()
        return updates / elapsed

    without, with_totals = [], []
    with tempfile.TemporaryDirectory(prefix="variance-sync-b7b-") as tmp:
        for attempt in range(max(RUNS, 5)):
            # Alternating, so that a change in the machine's load favours neither.
            first_plain = attempt % 2 == 0
            for plain in (first_plain, not first_plain):
                if plain:
                    without.append(run(None, Path(tmp, f"plain-{attempt}")))
                else:
                    with_totals.append(run(AnalyticsTotals(), Path(tmp, f"totals-{attempt}")))
    return without, with_totals


def main() -> None:
    plain, totals = hook_cost(MICRO_UPDATES)
    phases = asyncio.run(measure_load())
    none, consoles = phases["none"], phases["consoles"]
    figures = [
        Figure.of("B9 consumption, no console", "lines/s", [p.rate for p in none]),
        Figure.of(f"B9 consumption, {TABS} consoles", "lines/s", [p.rate for p in consoles]),
    ]
    for window in ("idle", "busy"):
        for side, name in ((none, "no console"), (consoles, f"{TABS} consoles")):
            for rank, label in enumerate(("p50", "p99")):
                samples = [getattr(p, f"{window}_ms")[rank] for p in side]
                figures.append(Figure.of(f"B9 /health {label} {window}, {name}", "ms", samples))
    figures += [
        Figure.of("B9b store writes without totals", "updates/s", plain),
        Figure.of("B9b store writes with totals", "updates/s", totals),
    ]
    report(
        "b9-console-load",
        figures,
        {
            "positions": POSITIONS,
            "count lines per phase": UPDATES,
            "console requests per consoles phase (median)": statistics.median(
                p.console_requests for p in consoles
            ),
            "consumption with consoles / without (medians)": statistics.median(
                p.rate for p in consoles
            )
            / statistics.median(p.rate for p in none),
            "B9b time with totals / without (medians)": statistics.median(plain)
            / statistics.median(totals),
            "B9b totals cost per update (us, medians)": (
                1 / statistics.median(totals) - 1 / statistics.median(plain)
            )
            * 1e6,
        },
    )


if __name__ == "__main__":
    main()
