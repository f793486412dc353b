"""`report --plot FILE.png|FILE.svg`: the chart of a report. Units per first key, stacked
by the second (by default units by facility, stacked per reason); accuracy per first key
as bars from 0 to 100 %. Matplotlib's file backend: no display needed."""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.core.analytics import KEYS
from streams.errors import UsageError

FORMATS = (".png", ".svg")


def check_target(path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'variance-sync[plot]'")
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: the file must end in .png or .svg")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: no folder {path.parent}")
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise UsageError(f"--plot {path}: cannot write a file there")


def plot(rows: Sequence[dict[str, Any]], by: Sequence[str], accuracy: bool, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only `--plot` pays for it

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # labels stay text: searchable, scalable
    from matplotlib import pyplot  # noqa: PLC0415

    figure, axes = pyplot.subplots(figsize=(10, 5), layout="constrained")
    first = KEYS[by[0]]
    if accuracy:
        labels = [str(row[first]) for row in rows]
        axes.bar(labels, [100 * (row["accuracy"] or 0) for row in rows], color="tab:green")
        axes.set_ylim(0, 100)
        axes.set_ylabel("inventory record accuracy (%)")
    else:
        _stacked(axes, rows, first, KEYS[by[1]] if len(by) > 1 else None)
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_ylabel("units (signed)")
    axes.set_xlabel(by[0])
    axes.tick_params(axis="x", labelrotation=45)
    figure.savefig(path)
    pyplot.close(figure)


def _stacked(axes: Any, rows: Sequence[dict[str, Any]], first: str, second: str | None) -> None:
    """Bars per `first`; per `second`, losses stacked downwards and gains upwards."""
    groups = sorted({str(row[first]) for row in rows})
    series: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        name = str(row[second]) if second else "units"
        series[name][str(row[first])] = series[name].get(str(row[first]), 0) + row["units"]
    below = dict.fromkeys(groups, 0)
    above = dict.fromkeys(groups, 0)
    for name, values in sorted(series.items()):
        heights = [values.get(g, 0) for g in groups]
        bottoms = [below[g] if h < 0 else above[g] for g, h in zip(groups, heights, strict=True)]
        axes.bar(groups, heights, bottom=bottoms, label=name)
        for g, h in zip(groups, heights, strict=True):
            (below if h < 0 else above)[g] += h
    if second:
        axes.legend(title=second.removesuffix("_id"), fontsize="small")
