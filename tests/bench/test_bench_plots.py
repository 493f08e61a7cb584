"""Bench plots from a committed report: one latency panel per bundle with p50/p99 shown, a Pareto plot whose labels
never overlap (measured with matplotlib's renderer), the machine class on both; `python -m mmedge.bench.plots`."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from mmedge.bench.plots import LABEL_GID, latency_figure, machine_class_of, pareto_figure, text_box
from mmedge.bench.report import BenchReport, load_json, pareto_report

COMMITTED = Path(__file__).parents[2] / "benchmarks" / "results" / "x86_64-amd-epyc-2c"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> BenchReport:
    return load_json(COMMITTED / "results.json")


def _label_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts if t.get_gid() == LABEL_GID]
    return texts, [text_box(t, renderer) for t in texts], fig.bbox


def _assert_no_overlap(boxes, frame) -> None:
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0, f"labels {i} and {j} overlap"
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def test_replot_module_writes_pngs(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "mmedge.bench.plots", str(COMMITTED), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("latency.png", "pareto.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    bad = subprocess.run([sys.executable, "-m", "mmedge.bench.plots", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "bench report not found" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stdout == ""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    unwritable = subprocess.run([sys.executable, "-m", "mmedge.bench.plots", str(COMMITTED), "--out",
                                 str(blocker / "plots")], capture_output=True, text=True, timeout=300)
    assert unwritable.returncode == 2 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.startswith("error: ") and unwritable.stderr.count("\n") == 1


def test_latency_has_a_panel_per_bundle_with_p50_and_p99(report: BenchReport):
    fig = latency_figure(report)
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == ["bundle 'tiny'", "bundle 'edge'"]
    texts = {t.get_text() for ax in axes for t in ax.texts}
    for r in report.results:
        assert f"{r.stats.p50_ms:.2f} · {r.stats.p99_ms:.2f}" in texts
    tiny, edge = axes
    tiny_p99 = max(r.stats.p99_ms for r in report.results if r.config.key.startswith("tiny/"))
    assert tiny_p99 <= tiny.get_xlim()[1] < 0.2 * edge.get_xlim()[1]  # tiny on its own scale, not squashed
    assert "x86_64-amd-epyc-2c" in fig._suptitle.get_text() and "latency (ms)" in tiny.get_xlabel()


def test_pareto_labels_do_not_overlap(report: BenchReport):
    pareto = pareto_report(report)
    assert pareto is not None
    fig = pareto_figure(pareto)
    texts, boxes, frame = _label_boxes(fig)
    assert sorted(t.get_text() for t in texts) == sorted(r.config.key.removesuffix("/b1") for r in pareto.results)
    _assert_no_overlap(boxes, frame)
    assert "x86_64-amd-epyc-2c" in fig.axes[0].get_title() and "ms" in fig.axes[0].get_xlabel()


def test_pareto_labels_of_coinciding_points_do_not_overlap(report: BenchReport):
    """Worst case: eight configurations at the very same latency and accuracy."""
    pareto = pareto_report(report)
    assert pareto is not None
    crowded = copy.deepcopy(pareto)
    crowded.results = crowded.results[:8]
    for i, r in enumerate(crowded.results):
        r.stats, r.accuracy, r.config.label = dataclasses.replace(r.stats, p50_ms=2.0), 0.8, f"config-{i}/b1"
    texts, boxes, frame = _label_boxes(pareto_figure(crowded))
    assert len(texts) == 8
    _assert_no_overlap(boxes, frame)


def test_machine_class_without_a_suite_record(report: BenchReport):
    env = copy.deepcopy(report.env)
    env.pop("bench_suite")
    assert machine_class_of(env) == "x86_64-amd-epyc-2c"
