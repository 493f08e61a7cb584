"""PNG plots of bench reports, drawn with matplotlib's Agg canvas.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never pyplot, so
plotting neither needs a display nor changes the backend of the calling process.
matplotlib is imported inside the functions: it is not a runtime dependency.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.errors import InputError, require
from mmedge.io import atomic_path

if TYPE_CHECKING:
    from mmedge.bench.report import BenchReport

logger = logging.getLogger(__name__)


def _figure(width: float, height: float) -> Any:
    """A Figure attached to an Agg canvas (no pyplot, no global backend change)."""
    require("matplotlib", "Plotting benchmark results", "matplotlib>=3.7")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points (latency, accuracy) that no other point beats on both, fastest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def latency_plot(report: BenchReport, path: Path) -> Path:
    """Horizontal box plot of each result's raw latencies (whiskers p1/p99, p50 annotated)."""
    results = [r for r in report.results if r.samples_ms]
    if not results:
        raise InputError("no result in this report keeps raw latency samples: nothing to plot")
    skipped = len(report.results) - len(results)
    if skipped:
        logger.warning("%d result(s) without raw samples left out of the latency plot", skipped)
    fig = _figure(8.0, 1.2 + 0.55 * len(results))
    ax = fig.add_subplot(1, 1, 1)
    labels = [r.config.key for r in results]
    style: dict[str, Any] = {
        "whis": (1, 99),
        "showfliers": True,
        "flierprops": {"markersize": 2, "alpha": 0.4},
        "medianprops": {"color": "tab:red"},
    }
    data = [r.samples_ms for r in results]
    try:
        ax.boxplot(data, orientation="horizontal", **style)  # matplotlib >= 3.10
    except TypeError:
        ax.boxplot(data, vert=False, **style)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    for i, result in enumerate(results, start=1):
        ax.annotate(
            f"p50 {result.stats.p50_ms:.2f}",
            (result.stats.p50_ms, i),
            xytext=(0, 9),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.invert_yaxis()
    headline = (report.env.get("bench") or {}).get("headline", "end-to-end")
    ax.set_xlabel(f"{headline} latency (ms)")
    ax.set_title(f"{report.title}: latency per configuration")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def pareto_plot(report: BenchReport, path: Path) -> Path:
    """Scatter of accuracy vs p50 latency, the Pareto front drawn as a highlighted step line."""
    results = [r for r in report.results if r.accuracy is not None]
    if not results:
        raise InputError(
            "no result in this report has an accuracy: run bench with evaluation to plot a Pareto front"
        )
    points = [(r.stats.p50_ms, float(r.accuracy or 0.0)) for r in results]
    front = pareto_front(points)
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = zip(*points, strict=True)
    ax.scatter(xs, [100 * y for y in ys], color="tab:gray", alpha=0.7, label="configurations")
    fx = [points[i][0] for i in front]
    fy = [100 * points[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", linewidth=1.5)
    ax.scatter(fx, fy, color="tab:red", zorder=3, label="Pareto front")
    for (x, y), result in zip(points, results, strict=True):
        ax.annotate(result.config.key, (x, 100 * y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_xlabel("p50 latency (ms, lower is better)")
    ax.set_ylabel(f"{results[0].accuracy_metric} (%)")
    ax.set_title(f"{report.title}: accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
