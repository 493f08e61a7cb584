"""`mmedge bench` through typer's CliRunner: files written, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmedge.bench.report import load_json
from mmedge.cli.main import app

runner = CliRunner()
FAST = ["--warmup", "0", "--iters", "2"]


def invoke(*args: object):
    return runner.invoke(app, ["bench", *(str(a) for a in args)])


def assert_one_line_error(result, pattern: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and pattern in errors[0], result.output


def test_json_and_report(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    out_json, out_dir = tmp_path / "bench.json", tmp_path / "report"
    result = invoke(
        tiny_bundle_pristine,
        "--backends",
        "torch,onnxruntime",
        *FAST,
        "--accuracy",
        "--output",
        out_json,
        "--report",
        out_dir,
    )
    assert result.exit_code == 0, result.output
    assert "onnxruntime/fp32/b1" in result.output and "cost model" in result.output
    report = load_json(out_json)
    assert [r.config.key for r in report.results] == ["torch/fp32/b1", "onnxruntime/fp32/b1"]
    assert all(r.accuracy is not None and r.stats.count == 2 for r in report.results)
    assert json.loads(out_json.read_text())["schema_version"] == 1
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["latency.png", "pareto.png", "results.json", "results.md"]
    assert "| onnxruntime/fp32/b1 |" in (out_dir / "results.md").read_text()


def test_two_batch_sizes_no_stages(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    result = invoke(
        tiny_bundle_pristine,
        "--backends",
        "onnxruntime",
        "--batch",
        "1,2",
        "--no-stages",
        "--modalities",
        "image,audio",
        "--seconds",
        "0.05",
        "--warmup",
        "0",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    keys = [r.config.key for r in load_json(out).results]
    assert keys == ["onnxruntime/fp32/b1/image+audio", "onnxruntime/fp32/b2/image+audio"]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--backends", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--backends", "onnxruntime", "--precisions", "int8"], "no int8 artifact"),
        (["--batch", "0"], "batch sizes must be >= 1"),
        (["--batch", "one"], "--batch expects comma-separated integers"),
        (["--iters", "3", "--seconds", "1"], "not both"),
        (["--modalities", "video"], "no video encoder"),
    ],
)
def test_bad_input(tiny_bundle_pristine: Path, args: list[str], pattern: str) -> None:
    assert_one_line_error(invoke(tiny_bundle_pristine, *args), pattern)


def test_missing_bundle_and_no_bundle(tmp_path: Path) -> None:
    assert_one_line_error(invoke(tmp_path / "nope", *FAST), "bundle folder not found")
    assert_one_line_error(invoke(*FAST), "give a BUNDLE")
    assert_one_line_error(invoke("--suite", tmp_path / "none.yaml"), "suite file not found")


def test_suite_refuses_options_it_would_ignore(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("runs: []\n")
    result = invoke("--suite", suite, "--output", tmp_path / "r.json", "--threads", "2", "--no-stages")
    assert_one_line_error(result, "--suite takes only")
    assert result.exit_code == 2
    for flag in ("--output", "--threads", "--stages"):
        assert flag in result.output
    assert "--iters" not in result.output.split("; not ")[1]
