"""PNG plots of bench reports, drawn with matplotlib's Agg canvas; `python -m mmedge.bench.plots DIR` replots.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never pyplot, so plotting neither
needs a display nor changes the backend of the calling process. matplotlib is imported inside the
functions: it is not a runtime dependency. Every figure names the machine class it was measured on.

- latency.png: one panel per bundle (each on its own scale, so a 1 ms model is not squashed next to a
  100 ms one); per configuration a box (p25-p75), whiskers p1-p99, the p50 as a red line, the p99 as a
  black diamond, and both numbers printed in a column right of the panel.
- pareto.png: accuracy vs p50 latency (log axis when the range is wide), the Pareto front as a step line,
  every point labelled; labels are placed greedily so that no two overlap (leader lines when moved away).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.errors import InputError, MmedgeError, require
from mmedge.io import atomic_path

if TYPE_CHECKING:
    from mmedge.bench.report import BenchReport, BenchResult

logger = logging.getLogger(__name__)
LABEL_GID = "pareto-label"
_RADII = (5, 12, 20, 30, 42, 56, 72)  # label offsets tried, in points, nearest first
_ANGLES = (35, -35, 145, -145, 0, 180, 90, -90, 65, -65, 115, -115)


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


def machine_class_of(env: dict[str, Any]) -> str:
    """The machine class of a report: the suite's, else '<arch>-<cpu or board>-<usable cores>c' from its env."""
    recorded = (env.get("bench_suite") or {}).get("machine_class")
    if recorded:
        return str(recorded)
    cpu = env.get("cpu") or {}
    slug = re.sub(r"[^a-z0-9]+", "-", str(cpu.get("board") or cpu.get("model") or "unknown-cpu").lower()).strip("-")
    arch = str((env.get("os") or {}).get("machine") or "unknown").lower()
    return f"{arch}-{slug[:48]}-{(cpu.get('cores') or {}).get('usable', '?')}c"


def machine_line(env: dict[str, Any]) -> str:
    """One subtitle line: machine class, CPU model and cores, GPUs."""
    cpu = env.get("cpu") or {}
    parts = [f"machine class {machine_class_of(env)}"]
    if cpu.get("board") or cpu.get("model"):
        cores = (cpu.get("cores") or {}).get("usable")
        parts.append(f"{cpu.get('board') or cpu.get('model')}" + (f", {cores} cores" if cores else ""))
    gpus = [str(g["name"]) for g in env.get("gpu") or [] if isinstance(g, dict) and g.get("name")]
    if gpus:
        parts.append("GPU " + ", ".join(gpus))
    return " · ".join(parts)


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


def bundle_of(result: BenchResult) -> str:
    """The bundle a result belongs to: its recorded bundle name, else its label's first part, else ''."""
    name = result.config.extra.get("bundle") if isinstance(result.config.extra, dict) else None
    if name:
        return str(name)
    key = result.config.key
    return key.split("/", 1)[0] if result.config.label and "/" in key else ""


def _short(key: str, bundle: str) -> str:
    return key[len(bundle) + 1:] if bundle and key.startswith(bundle + "/") else key


def _box(result: BenchResult, label: str) -> dict[str, Any]:
    """bxp statistics: box p25-p75 of the samples, whiskers p1-p99, median = the report's p50."""
    samples = np.asarray(result.samples_ms, dtype=np.float64)
    q1, q3, lo = np.percentile(samples, [25, 75, 1])
    return {"label": label, "med": result.stats.p50_ms, "q1": q1, "q3": q3, "whislo": lo,
            "whishi": result.stats.p99_ms, "fliers": []}


def latency_figure(report: BenchReport) -> Any:
    """The latency figure: one panel per bundle with p50 and p99 marked and printed."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    results = [r for r in report.results if r.samples_ms]
    if not results:
        raise InputError("no result in this report keeps raw latency samples: nothing to plot")
    left_out = [r.config.key for r in report.results if not r.samples_ms]
    if left_out:
        logger.warning("%d result(s) without raw samples left out of the latency plot", len(left_out))
    groups: dict[str, list[BenchResult]] = {}
    for r in results:
        groups.setdefault(bundle_of(r), []).append(r)
    heights = [0.9 + 0.42 * len(g) for g in groups.values()]
    fig = _figure(9.0, 1.3 + sum(heights))
    axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    headline = (report.env.get("bench") or {}).get("headline", "end-to-end")
    for ax, (bundle, group) in zip(axes, groups.items(), strict=True):
        stats = [_box(r, _short(r.config.key, bundle)) for r in group]
        style: dict[str, Any] = {"showfliers": False, "widths": 0.55, "medianprops": {"color": "tab:red", "lw": 2}}
        try:
            ax.bxp(stats, orientation="horizontal", **style)  # matplotlib >= 3.10
        except TypeError:
            ax.bxp(stats, vert=False, **style)
        ys = np.arange(1, len(group) + 1)
        ax.scatter([r.stats.p99_ms for r in group], ys, marker="D", s=16, color="black", zorder=3)
        ax.set_ylim(len(group) + 0.6, 0.4)
        ax.set_xlim(0, max(r.stats.p99_ms for r in group) * 1.08)
        column = blended_transform_factory(ax.transAxes, ax.transData)
        ax.text(1.02, 0.2, "p50 · p99 (ms)", transform=column, fontsize=8, fontweight="bold", va="center")
        for y, r in zip(ys, group, strict=True):
            ax.text(1.02, y, f"{r.stats.p50_ms:.2f} · {r.stats.p99_ms:.2f}", transform=column, fontsize=8,
                    va="center", family="monospace")
        ax.set_title(f"bundle '{bundle}'" if bundle else "all configurations", fontsize=10, loc="left")
        ax.set_xlabel(f"{headline} latency (ms)")
        ax.grid(axis="x", alpha=0.3)
    proxies = [Line2D([], [], color="tab:red", lw=2, label="p50"),
               Line2D([], [], color="black", marker="D", ls="", ms=4, label="p99"),
               Line2D([], [], color="black", lw=1, label="box p25–p75, whiskers p1–p99")]
    axes[0].legend(handles=proxies, loc="best", fontsize=7, framealpha=0.9)
    fig.suptitle(f"{report.title}: {headline} latency per configuration\n{machine_line(report.env)}", fontsize=10)
    if left_out:
        fig.text(0.01, 0.0, "not plotted (no samples): " + ", ".join(left_out), fontsize=7, va="bottom")
    fig.tight_layout()
    return fig


def latency_plot(report: BenchReport, path: Path) -> Path:
    """Write `latency_figure(report)` as a PNG."""
    return _save(latency_figure(report), Path(path))


def text_box(annotation: Any, renderer: Any) -> Any:
    """Display-space bbox of an annotation's text alone (its leader line excluded)."""
    from matplotlib.text import Text

    annotation.update_positions(renderer)  # the text's place is only computed at draw time otherwise
    return Text.get_window_extent(annotation, renderer)


def _overlap(a: Any, b: Any, pad: float = 2.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0)


def _inside(box: Any, frame: Any) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def place_labels(ax: Any, xy: Sequence[tuple[float, float]], labels: Sequence[str], order: Sequence[int]) -> list[Any]:
    """Annotate each point with its label at the nearest offset where it overlaps no placed label, no point
    and stays in the axes (greedy, in `order`); labels moved away get a leader line. Returns the annotations."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.asarray(xy, dtype=np.float64))
    markers = [Bbox.from_extents(x - 4, y - 4, x + 4, y + 4) for x, y in pts]
    placed: list[Any] = []
    out: list[Any] = [None] * len(labels)
    for i in order:
        best, best_cost = None, math.inf
        for r in _RADII:
            for angle in _ANGLES:
                dx, dy = r * math.cos(math.radians(angle)), r * math.sin(math.radians(angle))
                ha = "left" if dx > 1 else "right" if dx < -1 else "center"
                va = "bottom" if dy > 1 else "top" if dy < -1 else "center"
                leader = {"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1, "shrinkB": 3}
                ann = ax.annotate(labels[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                  fontsize=7, gid=LABEL_GID, arrowprops=leader if r > _RADII[1] else None)
                box = text_box(ann, renderer)
                cost = sum(_overlap(box, p) for p in placed) * 10 + sum(
                    _overlap(box, m, 0) for j, m in enumerate(markers) if j != i) + (0 if _inside(box, frame) else 5)
                if cost < best_cost:
                    if best is not None:
                        best.remove()
                    best, best_cost = ann, cost
                else:
                    ann.remove()
                if best_cost == 0:
                    break
            if best_cost == 0:
                break
        if best_cost:
            logger.warning("pareto label %r could not be placed without overlap", labels[i])
        placed.append(text_box(best, renderer))
        out[i] = best
    return out


def pareto_figure(report: BenchReport) -> Any:
    """Accuracy vs p50 latency with the Pareto front and non-overlapping labels."""
    results = [r for r in report.results if r.accuracy is not None]
    if not results:
        raise InputError(
            "no result in this report has an accuracy: run bench with evaluation to plot a Pareto front"
        )
    points = [(r.stats.p50_ms, 100 * float(r.accuracy or 0.0)) for r in results]
    front = pareto_front(points)
    batches = {r.config.batch for r in results}
    suffix = f"/b{batches.pop()}" if len(batches) == 1 else ""
    labels = [r.config.key[: -len(suffix)] if suffix and r.config.key.endswith(suffix) else r.config.key
              for r in results]
    fig = _figure(9.0, 5.6)
    fig.subplots_adjust(left=0.09, right=0.97, top=0.86, bottom=0.11)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    log = xs.max() / max(xs.min(), 1e-9) > 5
    if log:
        ax.set_xscale("log")
        ax.set_xlim(xs.min() / 1.6, xs.max() * 1.6)
    else:
        span = max(xs.max() - xs.min(), 1e-3)
        ax.set_xlim(max(0.0, xs.min() - 0.25 * span), xs.max() + 0.25 * span)
    yspan = max(ys.max() - ys.min(), 1.0)
    ax.set_ylim(ys.min() - 0.3 * yspan, ys.max() + 0.3 * yspan)
    ax.scatter(xs, ys, color="tab:gray", alpha=0.7, label="configurations", zorder=2)
    ax.step(xs[front], ys[front], where="post", color="tab:red", linewidth=1.5)
    ax.scatter(xs[front], ys[front], color="tab:red", zorder=3, label="Pareto front")
    ax.set_xlabel("p50 latency (ms" + (", log scale" if log else "") + "; lower is better)")
    ax.set_ylabel(f"{results[0].accuracy_metric} (%)")
    ax.set_title(f"{report.title}: accuracy vs latency\n{machine_line(report.env)}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    order = front + sorted((i for i in range(len(points)) if i not in front), key=lambda i: points[i][0])
    place_labels(ax, points, labels, order)
    return fig


def pareto_plot(report: BenchReport, path: Path) -> Path:
    """Write `pareto_figure(report)` as a PNG."""
    return _save(pareto_figure(report), Path(path))


def replot(report_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Redraw latency.png (and pareto.png when accuracies exist) from REPORT_DIR/results.json, no rerun."""
    from mmedge.bench.report import load_json, pareto_report

    source = Path(report_dir)
    report = load_json(source / "results.json" if source.is_dir() else source)
    target = Path(out_dir) if out_dir is not None else (source if source.is_dir() else source.parent)
    target.mkdir(parents=True, exist_ok=True)
    written = [latency_plot(report, target / "latency.png")]
    pareto = pareto_report(report)
    if pareto is not None:
        written.append(pareto_plot(pareto, target / "pareto.png"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mmedge.bench.plots REPORT_DIR [--out DIR]`: replot a bench report folder."""
    parser = argparse.ArgumentParser(prog="python -m mmedge.bench.plots", description=replot.__doc__)
    parser.add_argument("report", help="a bench --report folder (or its results.json)")
    parser.add_argument("--out", default=None, help="where to write the PNGs (default: the report folder)")
    args = parser.parse_args(argv)
    try:
        for path in replot(args.report, args.out):
            print(path)
    except MmedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, ValueError, KeyError, TypeError) as exc:  # an unwritable --out, a malformed report: no traceback
        bad_input = not isinstance(exc, OSError) or isinstance(exc, (FileNotFoundError, PermissionError,
                                                                     IsADirectoryError, NotADirectoryError))
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2 if bad_input else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
