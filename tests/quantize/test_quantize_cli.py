"""`mmedge quantize` and `mmedge inspect` through the real CLI, and one-line errors on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_helpers import assert_one_line_error, invoke

from mmedge.bundle import Bundle


def test_quantize_trt_flavour_then_inspect(tiny_bundle: Path):
    result = invoke("quantize", tiny_bundle, "--precision", "int8", "--target", "tensorrt", "--samples", "16",
                    "--components", "image,fusion_head", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)["artifacts"]
    assert [(a["component"], a["precision"]) for a in written] == [("image", "int8-trt"), ("fusion_head", "int8-trt")]
    bundle = Bundle.load(tiny_bundle)
    art = bundle.artifact("image", "int8-trt")
    assert re.fullmatch(r"image\.int8-trt\.[0-9a-f]{12}\.onnx", art.file) and art.parity["max_abs_diff"] > 0
    assert art.settings["qdq_check"] == "passed" and art.settings["weight_rounding"]["method"] == "gptq"
    shown = invoke("inspect", tiny_bundle, "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    rows = {r["precision"]: r for r in info["components"]["image"]["artifacts"]}
    assert rows["int8-trt"]["qdq_nodes"] > 0 and "int8" in rows["int8-trt"]["initializer_dtypes"]
    assert rows["fp32"]["qdq_nodes"] == 0 and rows["int8-trt"]["sha256"] == art.sha256[:12]
    assert rows["int8-trt"]["weight_rounding"] == "gptq" and "weight_rounding" not in rows["fp32"]
    table = invoke("inspect", tiny_bundle)
    assert table.exit_code == 0 and "image" in table.output


def test_quantize_fp16_table_output(tiny_bundle: Path):
    result = invoke("quantize", tiny_bundle, "--precision", "fp16", "--components", "text", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "new artifacts" in " ".join(result.output.split())
    assert "fp16" in Bundle.load(tiny_bundle).components["text"].artifacts


def test_unknown_precision(tiny_bundle_pristine: Path):
    assert_one_line_error(invoke("quantize", tiny_bundle_pristine, "--precision", "int4"), "'int4' is not one of")


def test_no_precision_nor_auto(tiny_bundle_pristine: Path):
    assert_one_line_error(invoke("quantize", tiny_bundle_pristine), "--precision")


def test_unknown_target_and_component(tiny_bundle_pristine: Path):
    assert_one_line_error(invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--target", "npu"),
                          "'npu' is not one of 'cpu', 'tensorrt'")
    assert_one_line_error(invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--components", "video"),
                          "unknown component(s) video")


def test_unknown_weight_rounding(tiny_bundle_pristine: Path):
    result = invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--rounding", "adaround")
    assert_one_line_error(result, "'adaround' is not one of 'gptq', 'nearest'")


def test_bundle_missing(tmp_path: Path):
    assert_one_line_error(invoke("quantize", tmp_path / "nope", "--precision", "int8"), "bundle folder not found")
    assert_one_line_error(invoke("inspect", tmp_path / "nope"), "bundle folder not found")


def test_no_calibration_data_for_a_modality(tiny_bundle: Path, tmp_path: Path):
    manifest = tmp_path / "text_only.jsonl"
    rows = [{"text": f"the digit {i % 10}", "label": str(i % 10)} for i in range(40)]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = invoke("quantize", tiny_bundle, "--precision", "int8", "--calib", manifest, "--components", "image")
    assert_one_line_error(result, "no calibration data for image")
    assert not list(tiny_bundle.glob("image.int8*.onnx"))


def test_missing_calibration_file(tiny_bundle_pristine: Path, tmp_path: Path):
    result = invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--calib", tmp_path / "none.jsonl")
    assert_one_line_error(result, "none.jsonl")


def test_trt_flavour_violations_fail_loudly_and_leave_nothing(tiny_bundle: Path, monkeypatch):
    import mmedge.quantize.int8 as int8

    asymmetric = int8.Scheme("broken-u8", True, "uint8", "int8", False, op_types=int8.TRT_OP_TYPES)
    monkeypatch.setattr(int8, "TRT_SCHEME", asymmetric)
    before = (tiny_bundle / "bundle.json").read_text()
    result = invoke("quantize", tiny_bundle, "--precision", "int8", "--target", "tensorrt", "--components", "image",
                    "--samples", "8")
    assert_one_line_error(result, "violates TensorRT explicit-quantization rules")
    assert "zero point is uint8" in " ".join(result.output.split())
    assert not list(tiny_bundle.glob("image.int8*.onnx"))
    assert not [p for p in tiny_bundle.iterdir() if p.name.endswith(".tmp")]
    assert (tiny_bundle / "bundle.json").read_text() == before


def test_max_float_macs_is_checked(tiny_bundle_pristine: Path):
    out_of_range = invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--max-float-macs", "1.5")
    assert_one_line_error(out_of_range, "--max-float-macs must be in [0, 1]")
    trt = invoke("quantize", tiny_bundle_pristine, "--precision", "int8", "--target", "tensorrt",
                 "--max-float-macs", "0.2")
    assert_one_line_error(trt, "applies to --target cpu only")


def test_max_float_macs_zero_quantizes_every_layer(tiny_bundle: Path):
    result = invoke("quantize", tiny_bundle, "--precision", "int8", "--components", "image,text",
                    "--max-float-macs", "0", "--samples", "16", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    settings = {a["component"]: a["settings"] for a in json.loads(result.output)["artifacts"]}
    assert settings["image"]["float_prefix"] is None and settings["text"]["float_prefix"] is None
