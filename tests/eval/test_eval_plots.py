"""The confusion-matrix PNG: drawn without pyplot (the caller's matplotlib backend is untouched), titled with
accuracy and sample count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_plot_leaves_pyplot_alone(tmp_path: Path):
    code = (
        "import sys\n"
        "from mmedge.eval.plots import plot_confusion\n"
        f"p = plot_confusion([[3, 1], [0, 4]], ['a', 'b'], {str(tmp_path / 'cm.png')!r}, 'tiny')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG


def test_confusion_title_states_accuracy_and_count(tmp_path: Path, monkeypatch):
    import mmedge.eval.plots as plots

    seen = {}
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: seen.setdefault("title", fig.axes[0].get_title())
                        and real(fig, path))
    plots.plot_confusion([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png", "tiny")
    assert seen["title"] == "tiny\nconfusion matrix: accuracy 0.875 on 8 samples (cells: counts)"
