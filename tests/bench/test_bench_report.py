"""Bench report: JSON round trip, Markdown, rich table, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmedge.bench.costmodel import Cost
from mmedge.bench.envinfo import environment_record
from mmedge.bench.plots import latency_plot, pareto_front, pareto_plot
from mmedge.bench.report import (
    BENCH_SCHEMA_VERSION,
    BenchConfig,
    BenchReport,
    BenchResult,
    load_json,
    save_json,
)
from mmedge.bench.stats import instability_warning, summarize
from mmedge.bench.summary import render_table, to_markdown
from mmedge.bench.timers import StageRecorder
from mmedge.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(backend: str, precision: str, center_ms: float, accuracy: float | None, seed: int) -> BenchResult:
    rng = np.random.default_rng(seed)
    samples_ms = list(center_ms + rng.gamma(2.0, center_ms * 0.02, size=200))
    stages = StageRecorder()
    for ms in samples_ms:
        stages.add_iteration(
            {"preprocess": int(0.1 * ms * 1e6), "image": int(0.6 * ms * 1e6), "head": 50_000}
        )
    stats = summarize(samples_ms, unit="ms")
    warning = instability_warning(stats)
    return BenchResult(
        config=BenchConfig(backend, precision, batch=1, modalities=("image", "text"), threads=4),
        stats=stats,
        stages=stages.summarize(),
        samples_ms=samples_ms,
        accuracy=accuracy,
        cost=Cost(params=1000, macs=2_000_000, by_op={"Conv": 2_000_000}),
        power={"mean_mw": 5000.0, "energy_mj_per_inference": 12.5, "source": "VDD_IN"},
        warnings=[warning] if warning else [],
    )


@pytest.fixture
def report() -> BenchReport:
    results = [
        _result("onnxruntime", "fp32", 10.0, 0.91, 0),
        _result("onnxruntime", "fp16", 7.0, 0.905, 1),
        _result("onnxruntime", "int8", 4.0, 0.88, 2),
        _result("torch", "fp32", 12.0, 0.89, 3),  # dominated: slower and less accurate than ort fp32
        _result("tensorrt", "fp16", 2.0, None, 4),
    ]
    results[-1].warnings.append("a | pipe in a warning")
    rep = BenchReport(
        env=environment_record(None), results=results, reference="onnxruntime/fp32/b1/image+text/t4"
    )
    rep.compute_ratios()
    return rep


def test_config_key_and_validation() -> None:
    assert BenchConfig("ort", "int8", 8, ("audio",), None, "concurrent").key == "ort/int8/b8/audio/concurrent"
    assert BenchConfig("ort", "fp32", label="baseline").key == "baseline"
    with pytest.raises(ValueError):
        BenchConfig("ort", "fp32", mode="parallel")


def test_ratios(report: BenchReport) -> None:
    ref = report.results[0]
    assert ref.ratio_to_reference == pytest.approx(1.0)
    assert report.results[2].ratio_to_reference == pytest.approx(
        report.results[2].stats.p50_ms / ref.stats.p50_ms
    )
    report.reference = "missing"
    with pytest.raises(InputError, match="not among"):
        report.compute_ratios()


def test_json_round_trip(report: BenchReport, tmp_path: Path) -> None:
    path = save_json(report, tmp_path / "out" / "bench.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == BENCH_SCHEMA_VERSION
    assert len(data["results"][0]["samples_ms"]) == 200
    again = load_json(path)
    assert again.to_json() == json.loads(json.dumps(report.to_json()))
    assert again.results[0].stats == report.results[0].stats
    assert again.results[0].stages["image"] == report.results[0].stages["image"]
    assert again.results[0].cost == report.results[0].cost
    assert again.results[0].samples_ms == pytest.approx(report.results[0].samples_ms, abs=1e-6)
    assert again.results[0].config == report.results[0].config
    assert again.results[-1].accuracy is None
    assert not list(tmp_path.joinpath("out").glob("*.tmp"))  # atomic write left no temp file


def test_load_json_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError):
        load_json(bad)
    bad.write_text(json.dumps({"results": []}))
    with pytest.raises(InputError, match="schema_version"):
        load_json(bad)
    bad.write_text(json.dumps({"schema_version": BENCH_SCHEMA_VERSION + 1}))
    with pytest.raises(InputError, match="newer"):
        load_json(bad)
    bad.write_text(json.dumps({"schema_version": 1, "results": [{"config": {}}]}))
    with pytest.raises(InputError, match="not a valid"):
        load_json(bad)


COMMITTED = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "results").glob("*/results.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_committed_results_load_and_rewrite_byte_for_byte(path: Path, tmp_path: Path) -> None:
    report = load_json(path)
    assert report.results and all(r.config.backend for r in report.results)
    assert save_json(report, tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_json_key_order_and_object_round_trip(report: BenchReport) -> None:
    data = json.loads(json.dumps(report.to_json()))
    assert list(data) == ["schema_version", "title", "reference", "env", "results"]
    assert list(data["results"][0]) == [
        "config", "stats", "stages", "samples_ms", "ratio_to_reference", "accuracy", "accuracy_metric",
        "cost", "power", "warnings", "error",
    ]  # fmt: skip
    assert list(data["results"][0]["config"]) == [
        "backend", "precision", "batch", "modalities", "threads", "mode", "label", "extra"
    ]
    for result in report.results:  # samples are written rounded to the nanosecond
        result.samples_ms = [round(x, 6) for x in result.samples_ms]
    assert BenchReport.from_json(data) == report
    assert BenchResult.from_json(data["results"][0]) == report.results[0]
    assert BenchConfig.from_json(data["results"][0]["config"]).modalities == ("image", "text")


def test_malformed_report_names_the_key(report: BenchReport, tmp_path: Path) -> None:
    data = report.to_json()
    data["results"][1]["stats"]["count"] = "many"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad\.json is not a valid .*results\[1\]\.stats\.count: expected int"):
        load_json(bad)
    data = report.to_json()
    data["results"][0]["config"]["mode"] = "parallel"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"not a valid .*mode must be one of"):
        load_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="not an mmedge bench report"):
        load_json(bad)


def test_markdown_has_every_row(report: BenchReport) -> None:
    md = to_markdown(report)
    assert md.startswith("# mmedge bench")
    assert "| config | p50 ms | p90 ms | p99 ms |" in md
    for result in report.results:
        row = next(line for line in md.splitlines() if line.startswith(f"| {result.config.key} |"))
        assert f"{result.stats.p50_ms:.3f}" in row and f"{result.stats.throughput:.1f}" in row
    assert "1.00×" in md  # the reference's own ratio
    assert "91.00%" in md
    assert "## Stage breakdown (p50 ms)" in md and "| preprocess | image | head |" in md.replace(
        "config | ", ""
    )
    assert "## Environment" in md and "| cpu |" in md
    assert "a \\| pipe in a warning" in md


def test_rich_table(report: BenchReport) -> None:
    from rich.console import Console

    table = render_table(report)
    assert table.row_count == len(report.results)
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "onnxruntime/int8/b1/image+text/t4" in text and "p50 ms" in text


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plots(report: BenchReport, tmp_path: Path) -> None:
    _assert_png(latency_plot(report, tmp_path / "latency.png"))
    _assert_png(pareto_plot(report, tmp_path / "pareto.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.png", "pareto.png"]


def test_plots_need_data(report: BenchReport, tmp_path: Path) -> None:
    for result in report.results:
        result.accuracy = None
        result.samples_ms = []
    with pytest.raises(InputError, match="accuracy"):
        pareto_plot(report, tmp_path / "p.png")
    with pytest.raises(InputError, match="raw latency"):
        latency_plot(report, tmp_path / "l.png")


def test_pareto_front() -> None:
    # (latency, accuracy): the slow-and-worse point (12, 0.89) and the tie-slower point are dominated
    points = [(10.0, 0.91), (7.0, 0.905), (4.0, 0.88), (12.0, 0.89), (4.5, 0.88)]
    assert pareto_front(points) == [2, 1, 0]
    assert pareto_front([]) == []
