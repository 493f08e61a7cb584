"""Accuracy-vs-precision report (library and `mmedge eval`) and the precision-list parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmedge.cli.main import app
from mmedge.errors import BundleError
from mmedge.eval.precision_report import precision_report

runner = CliRunner()
MIXED = "image=int8,text=int8,audio=fp16,fusion_head=fp32"


def test_report_rows(quantized_bundle_pristine: Path):
    rows = precision_report(quantized_bundle_pristine, "digits", "test", ["fp32", "fp16", "int8", "int8-trt",
                                                                          MIXED])
    by = {r.label: r for r in rows}
    assert by["fp32"].agreement == 1.0 and all(v["max_abs_diff"] == 0 for v in by["fp32"].components.values())
    assert by["fp16"].agreement >= 0.98 and abs(by["fp16"].accuracy - by["fp32"].accuracy) <= 0.02
    assert set(by["int8"].components) == {"text", "image", "audio", "fusion_head"}
    assert by["int8"].bytes < by["fp16"].bytes < by["fp32"].bytes
    mixed = by[MIXED]
    assert mixed.precisions["audio"] == "fp16" and mixed.components["fusion_head"]["max_abs_diff"] == 0
    assert mixed.components["image"] == by["int8"].components["image"]


def test_missing_precision_names_the_fix(tiny_bundle_pristine: Path):
    with pytest.raises(BundleError, match="mmedge quantize"):
        precision_report(tiny_bundle_pristine, "digits", "test", ["int8"])


def test_eval_cli_prints_the_comparison(quantized_bundle_pristine: Path):
    result = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--precision", f"fp32,int8;{MIXED}"])
    assert result.exit_code == 0, result.output
    assert "accuracy vs precision" in " ".join(result.output.split())
    data = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--precision", "fp32,fp16", "--json"])
    rows = json.loads(data.output)
    assert [r["precision_report"]["precision"] for r in rows] == ["fp32", "fp16"]


def test_eval_cli_single_fp32_keeps_its_output(quantized_bundle_pristine: Path):
    result = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--json"])
    assert result.exit_code == 0, result.output
    assert "precision_report" not in json.loads(result.output)[0]


def test_eval_cli_bad_precision_is_one_line(quantized_bundle_pristine: Path):
    result = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--precision", "image=int4"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "unknown precision 'int4'" in " ".join(result.output.split())
    auto = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--precision", "auto"])
    assert auto.exit_code != 0 and "quantize" in " ".join(auto.output.split())


def test_eval_batch_size_changes_no_fp32_result(quantized_bundle_pristine: Path):
    runs = {}
    for batch in ("1", "32"):
        result = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--precision", "fp32,int8",
                                     "--batch", batch, "--json"])
        assert result.exit_code == 0, result.output
        runs[batch] = json.loads(result.output)
    assert runs["1"][0]["subsets"] == runs["32"][0]["subsets"]
    assert all(run[1]["precision_report"]["agreement_with_fp32"] >= 0.9 for run in runs.values())
    bad = runner.invoke(app, ["eval", str(quantized_bundle_pristine), "--batch", "0"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
