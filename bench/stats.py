"""Repeat a measurement and summarise it; print and save the results."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, name: str, unit: str, samples: list[float]) -> Figure:
        return cls(name, unit, statistics.median(samples), min(samples), max(samples))


def rate(work: Callable[[], int], runs: int) -> list[float]:
    """Items per second over `runs` timed runs of `work`, which returns its item count."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        items = work()
        samples.append(items / (time.perf_counter() - started))
    return samples


def report(bench: str, figures: list[Figure], ratios: dict[str, float]) -> None:
    table = Table(title=f"{bench} on {os.environ.get('BENCH_BROKER', 'tansu')}")
    for column in ("figure", "median", "min", "max", "unit"):
        table.add_column(column, justify="left" if column in ("figure", "unit") else "right")
    for f in figures:
        table.add_row(f.name, _shown(f.median), _shown(f.minimum), _shown(f.maximum), f.unit)
    console = Console()
    console.print(table)
    for name, value in ratios.items():
        console.print(f"{name}: {value:.3f}")
    RESULTS.mkdir(exist_ok=True)
    line = {
        "bench": bench,
        "broker": os.environ.get("BENCH_BROKER", "tansu"),
        "at": time.time(),
        "figures": [asdict(f) for f in figures],
        "ratios": ratios,
    }
    with (RESULTS / f"{bench}.json").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def _shown(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
