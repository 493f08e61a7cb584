"""The bench harness on the real tiny bundle: configurations side by side, stats, ratios, stages, cost."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mmedge.bench.harness import BenchSpec, compare_latency, run_bench
from mmedge.bench.report import BenchReport, load_json, save_json
from mmedge.bench.summary import to_markdown, write_outputs
from mmedge.errors import BundleError, InputError, MmedgeError

ITERS = 4
ENCODERS = ["encoder.text", "encoder.image", "encoder.audio"]
STAGES = [
    "after_switch",
    "preprocess.text",
    "preprocess.image",
    "preprocess.audio",
    "preprocess",
    *ENCODERS,
    "encoders.sequential",
    "encoders.concurrent",
    "fusion_head",
    "postprocess",
    "end_to_end",
]


@pytest.fixture(scope="module")
def report(tiny_bundle_pristine: Path) -> BenchReport:
    """torch vs onnxruntime fp32, batch 1, every stage, a few rounds."""
    return compare_latency(
        tiny_bundle_pristine,
        [("torch", "fp32"), ("onnxruntime", "fp32")],
        batch=1,
        warmup=1,
        iters=ITERS,
        pool=8,
        mode="concurrent",
    )


def test_both_backends_measured_with_sane_stats(report: BenchReport) -> None:
    keys = [r.config.key for r in report.results]
    assert keys == ["torch/fp32/b1", "onnxruntime/fp32/b1"]
    assert report.reference == "torch/fp32/b1"
    for r in report.results:
        s = r.stats
        assert not r.failed and s.count == ITERS and len(r.samples_ms) == ITERS
        assert 0 < s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
        assert s.min_ms <= s.mean_ms <= s.max_ms and s.cov >= 0 and s.throughput > 0
        assert r.config.modalities == ("text", "image", "audio") and r.config.batch == 1
        assert r.config.mode == "concurrent"


def test_ratios_relative_to_first_config(report: BenchReport) -> None:
    ref, ort = report.results
    assert ref.ratio_to_reference == pytest.approx(1.0)
    assert ort.ratio_to_reference == pytest.approx(ort.stats.p50_ms / ref.stats.p50_ms)


def test_every_stage_is_timed(report: BenchReport) -> None:
    for r in report.results:
        assert list(r.stages) == STAGES
        assert all(s.count == ITERS and s.p50_ms > 0 for s in r.stages.values())
        # end to end includes preprocessing and the model call
        assert r.stages["end_to_end"].p50_ms > r.stages["fusion_head"].p50_ms


def test_cost_model_and_concurrency(report: BenchReport) -> None:
    torch_row, ort_row = report.results
    assert torch_row.cost is not None and ort_row.cost is not None
    assert torch_row.cost.params == ort_row.cost.params > 0  # torch rows are counted on the fp32 ONNX
    assert ort_row.cost.macs > 0
    for r in report.results:
        fig = r.config.extra["compute"]
        assert set(fig["by_component"]) == {"text", "image", "audio", "fusion_head"}
        assert fig["achieved_gflops"] == pytest.approx(fig["gflop_per_call"] / (r.stats.p50_ms / 1000))
        assert fig["pct_of_peak"] is None or 0 < fig["pct_of_peak"] < 100
        conc = r.config.extra["concurrency"]
        per = [r.stages[s].p50_ms for s in ENCODERS]
        assert conc["sum_of_encoders_p50_ms"] == pytest.approx(sum(per))
        assert conc["concurrent_over_slowest"] == pytest.approx(r.stages["encoders.concurrent"].p50_ms / max(per))
        assert r.config.extra["power_note"]  # no tegrastats here
        assert r.power is None


def test_environment_record(report: BenchReport, tiny_bundle_pristine: Path) -> None:
    env = report.env
    assert env["cpu"]["isa"] and "avx512f" in env["cpu"]["isa"]
    assert env["cpu"]["cores"]["logical"] >= 1
    assert env["bundle"]["path"] == str(tiny_bundle_pristine)
    assert env["peak_rss_mb"] > 0
    bench = env["bench"]
    assert bench["iters"] == ITERS and bench["warmup"] == 1 and bench["clock"] == "cpu.perf_counter_ns"
    assert bench["data"] == "digits:test"


def test_json_round_trip(report: BenchReport, tmp_path: Path) -> None:
    path = save_json(report, tmp_path / "r.json")
    again = load_json(path)
    assert again.to_json() == json.loads(json.dumps(report.to_json()))
    assert again.results[1].stats == report.results[1].stats
    assert again.results[1].cost == report.results[1].cost
    assert again.results[0].config.extra["concurrency"] == report.results[0].config.extra["concurrency"]


def test_markdown_has_every_row_and_section(report: BenchReport) -> None:
    md = to_markdown(report)
    for key in ("torch/fp32/b1", "onnxruntime/fp32/b1"):
        assert f"| {key} |" in md
        assert md.count(f"| {key} |") >= 4  # results, cost, concurrency, stages
    for section in (
        "## Cost model",
        "## Encoders: sequential vs concurrent",
        "## Power",
        "## Stage breakdown",
        "## Environment",
        "interleaved round-robin",
    ):
        assert section in md


def test_report_folder(report: BenchReport, tmp_path: Path) -> None:
    written = write_outputs(report, tmp_path / "x.json", tmp_path / "rep")
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["latency.png", "results.json", "results.md"]  # no accuracy → no pareto
    assert (tmp_path / "x.json") in written


def test_subset_of_modalities_and_batch(tiny_bundle_pristine: Path) -> None:
    rep = run_bench(
        BenchSpec(
            tiny_bundle_pristine,
            ["onnxruntime"],
            batches=[2],
            warmup=0,
            iters=2,
            modalities=["image"],
            stages=False,
            pool=4,
        )
    )
    (r,) = rep.results
    assert r.config.key == "onnxruntime/fp32/b2/image" and r.config.batch == 2
    # auto: the Pipeline's default
    assert set(r.stages) == {"after_switch", "fusion_head", "encoders.auto", "encoder.image"}
    assert r.stats.throughput == pytest.approx(2 * 1000 / r.stats.mean_ms)
    assert set(r.config.extra["compute"]["by_component"]) == {"image", "fusion_head"}


def test_seconds_budget_and_accuracy(tiny_bundle_pristine: Path) -> None:
    rep = run_bench(
        BenchSpec(tiny_bundle_pristine, ["onnxruntime"], warmup=0, seconds=0.05, stages=False, pool=4, accuracy=True)
    )
    (r,) = rep.results
    assert r.stats.count >= 1 and rep.env["bench"]["seconds"] == 0.05
    assert r.accuracy is not None and 0 <= r.accuracy <= 1 and "digits:test" in r.accuracy_metric


@pytest.mark.parametrize(
    ("changes", "error", "text"),
    [
        ({"backends": ["tensorflow"]}, InputError, "unknown backend 'tensorflow'"),
        ({"backends": ["onnxruntime"], "precisions": ["int8"]}, BundleError, "no int8 artifact"),
        ({"precisions": ["fp64"]}, InputError, "unknown precision"),
        ({"backends": ["torch"], "precisions": ["fp16"]}, InputError, "nothing to benchmark"),
        ({"batches": [0]}, InputError, "batch sizes must be >= 1"),
        ({"iters": 0}, InputError, "--iters"),
        ({"modalities": ["video"]}, InputError, "no video encoder"),
        ({"mode": "parallel"}, InputError, "unknown mode"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_bundle_pristine: Path, changes: dict, error: type, text: str) -> None:
    with pytest.raises(error) as info:
        run_bench(BenchSpec(tiny_bundle_pristine, **changes))
    assert text in str(info.value) and "\n" not in str(info.value)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle folder not found"):
        compare_latency(tmp_path / "nope", [("onnxruntime", "fp32")])
    with pytest.raises(InputError):
        compare_latency(tmp_path / "nope", [])


def test_power_requested_without_tegrastats(tiny_bundle_pristine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MmedgeError, match="tegrastats"):
        run_bench(BenchSpec(tiny_bundle_pristine, ["onnxruntime"], power=True))


def test_no_nan_in_json(report: BenchReport) -> None:
    text = json.dumps(report.to_json(), allow_nan=False)  # strict JSON: no NaN/inf anywhere
    assert not math.isnan(json.loads(text)["results"][0]["stats"]["p50_ms"])


def test_manifest_data_text_only_sequential(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "texts.jsonl"
    rows = [{"text": f"the digit is {d} maybe {d}", "label": str(d)} for d in range(10)] * 2
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = BenchSpec(
        tiny_bundle_pristine,
        ["onnxruntime"],
        warmup=0,
        iters=2,
        data=str(manifest),
        split="all",
        modalities=["text"],
        mode="sequential",
        pool=4,
    )
    (r,) = run_bench(spec).results
    assert r.config.key == "onnxruntime/fp32/b1/text" and r.config.mode == "sequential"
    assert {"preprocess.text", "encoder.text", "encoders.sequential", "encoders.concurrent"} <= set(r.stages)
    assert "preprocess.image" not in r.stages
