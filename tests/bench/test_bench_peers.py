"""Peers side by side with mmedge's rows: OpenVINO, the naive int8 of quantize_dynamic, the auto executor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mmedge.bench.harness import BenchSpec, run_bench
from mmedge.bench.plan import NAIVE_INT8, load_precision
from mmedge.bench.report import BenchReport
from mmedge.bench.summary import to_markdown
from mmedge.errors import InputError

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def report(quantized_bundle_pristine: Path) -> BenchReport:
    """Every peer next to mmedge's rows on the tiny bundle, with accuracy, the headline in auto mode."""
    spec = BenchSpec(quantized_bundle_pristine, ["torch", "onnxruntime", "openvino", NAIVE_INT8],
                     precisions=["fp32", "int8"], warmup=1, iters=8, pool=8, threads=1, accuracy=True)
    return run_bench(spec)


def test_peer_rows_present_with_accuracy(report: BenchReport) -> None:
    keys = [r.config.key for r in report.results]
    assert keys == ["torch/fp32/b1", "onnxruntime/fp32/b1", "onnxruntime/int8/b1", "openvino/fp32/b1",
                    "openvino/int8/b1", "ort-naive-int8/int8/b1"]
    for r in report.results:
        assert not r.failed, r.error
        assert r.accuracy is not None and 0 < r.accuracy <= 1  # every row can sit on pareto.png
        assert r.ratio_to_reference is not None and r.config.threads == 1
    by_key = {r.config.key: r for r in report.results}
    naive, fp32 = by_key["ort-naive-int8/int8/b1"], by_key["onnxruntime/fp32/b1"]
    assert naive.config.extra["options"] == {"naive_int8": True}
    assert abs(naive.accuracy - fp32.accuracy) < 0.2  # same model, quantized: close but its own figure
    assert by_key["openvino/fp32/b1"].accuracy == pytest.approx(fp32.accuracy, abs=0.01)


def test_auto_mode_is_compared_with_both_fixed_modes(report: BenchReport) -> None:
    for r in report.results:
        assert r.config.mode == "auto"
        assert {"encoders.auto", "encoders.sequential", "encoders.concurrent"} <= set(r.stages)
        # auto is taken from the rounds whose other phase ran sequential (iterations 0, 1, 4, 5 of 8), next to them
        assert (r.stages["encoders.auto"].count, r.stages["encoders.sequential"].count) == (4, 4)
        assert r.stages["encoders.concurrent"].count == 4 and r.stats.count == 8
        fig = r.config.extra["concurrency"]
        assert fig["auto_over_sequential"] == pytest.approx(
            r.stages["encoders.auto"].p50_ms / r.stages["encoders.sequential"].p50_ms)
    assert "auto / seq" in to_markdown(report)


def test_variant_precisions() -> None:
    assert load_precision(NAIVE_INT8, "int8") == "fp32"  # quantized at load from the fp32 graph
    assert load_precision("onnxruntime", "int8") == "int8"


def test_naive_int8_runs_int8_only(quantized_bundle_pristine: Path) -> None:
    spec = BenchSpec(quantized_bundle_pristine, [NAIVE_INT8], precisions=["fp32", "fp16", "int8"], warmup=0,
                     iters=1, pool=2, stages=False)
    assert [r.config.key for r in run_bench(spec).results] == ["ort-naive-int8/int8/b1"]
    with pytest.raises(InputError, match="runs int8 only"):
        run_bench(BenchSpec(quantized_bundle_pristine, configs=[(NAIVE_INT8, "fp32")], iters=1, pool=2))


def test_a_peer_that_cannot_load_is_a_failed_row(tiny_bundle_pristine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    spec = BenchSpec(tiny_bundle_pristine, ["onnxruntime", "openvino"], warmup=0, iters=2, pool=2, stages=False)
    ort_row, ov_row = run_bench(spec).results
    assert not ort_row.failed and ov_row.failed
    assert "pip install 'mmedge[openvino]'" in (ov_row.error or "")


def test_naive_int8_on_an_fp32_only_bundle_counts_no_artifact_cost(tiny_bundle_pristine: Path) -> None:
    spec = BenchSpec(tiny_bundle_pristine, configs=[("onnxruntime", "fp32"), (NAIVE_INT8, "int8")], warmup=0,
                     iters=2, pool=2, stages=False, threads=1)
    rep = run_bench(spec)  # the bundle has no int8 artifact: the timed graph is quantize_dynamic's
    fp32, naive = rep.results
    assert not naive.failed and naive.cost is None  # MACs of mmedge's calibrated int8 would be another graph
    assert fp32.cost is not None and fp32.cost.macs > 0
    assert "quantize_dynamic graph is made at load" in to_markdown(rep)
    assert "is not installed" not in to_markdown(rep)
