"""Evaluation report files: confusion-matrix PNG, per-class and per-subset JSON, robustness curves.

matplotlib (Agg backend) is imported inside the plotting functions only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.io import atomic_path, write_json

if TYPE_CHECKING:
    from mmedge.eval.evaluate import EvalResult
    from mmedge.eval.robustness import RobustnessCurve


def plot_confusion(confusion: list[list[int]] | np.ndarray, labels: list[str], path: str | Path,
                   title: str = "", normalize: bool = True) -> Path:
    """Confusion matrix (rows = true, columns = predicted) as a PNG; cells show counts, colour = row share."""
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"confusion must be {len(labels)}x{len(labels)}, got shape {cm.shape}")
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1.0) if normalize else cm
    side = max(4.0, 0.55 * len(labels) + 1.5)
    fig = agg_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "count")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = 0.5 * (shares.max() if shares.size else 1.0)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > threshold else "black")
    accuracy = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    ax.set_title(f"{title + chr(10) if title else ''}confusion matrix: accuracy {accuracy:.3f} on {int(cm.sum())} "
                 "samples (cells: counts)", fontsize=10)
    return save_figure(fig, path)


def agg_figure(width: float, height: float) -> Any:
    """A Figure on its own Agg canvas: no pyplot, so the caller's matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write a figure as PNG atomically, and close it if pyplot manages it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure (e.g. robustness curves): release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def write_eval_report(result: EvalResult, out_dir: str | Path, labels: list[str],
                      curves: list[RobustnessCurve] | None = None, title: str = "") -> dict[str, Path]:
    """Write confusion.png, per_class.json, subsets.json (and robustness.json/.png) for an EvalResult."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"confusion": plot_confusion(result.confusion, labels, out / "confusion.png", title)}
    write_json(out / "per_class.json", result.per_class)
    write_json(out / "subsets.json", result.subsets)
    files["per_class"], files["subsets"] = out / "per_class.json", out / "subsets.json"
    if curves:
        from mmedge.eval.robustness import plot_robustness

        write_json(out / "robustness.json", [c.to_json() for c in curves])
        files["robustness"] = plot_robustness(curves, out / "robustness.png", title)
        files["robustness_json"] = out / "robustness.json"
    return files
