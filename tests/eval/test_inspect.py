"""`mmedge inspect` verifies every recorded file, checks each graph against bundle.json, reports schema-1 bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke

from mmedge.bundle import MANIFEST
from mmedge.errors import BundleError
from mmedge.eval.inspect import inspect_bundle
from mmedge.runtime.pipeline import Pipeline

SIDE_FILES = ["torch/model.safetensors", "torch/run.json", "tokenizer.json"]  # export's order


def _downgrade(root: Path) -> None:
    """Make the bundle look as an older mmedge wrote it (schema 1: no side-file hashes)."""
    data = json.loads((root / MANIFEST).read_text())
    data["schema_version"] = 1
    data.pop("files")
    (root / MANIFEST).write_text(json.dumps(data))


def test_consistent_bundle_inspects_clean(tiny_bundle: Path):
    result = invoke("inspect", tiny_bundle, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["problems"] == [] and info["unverified"] == [] and info["schema_version"] == 2
    assert info["needs_migration"] is False
    assert all("problems" in row for comp in info["components"].values() for row in comp["artifacts"])


def test_schema_1_bundle_is_inspected_read_only_and_needs_migrate(tiny_bundle: Path):
    """inspect shows a schema-1 bundle (artifacts verified) and exits non-zero naming `mmedge migrate`."""
    _downgrade(tiny_bundle)
    before = (tiny_bundle / MANIFEST).read_bytes()
    info = inspect_bundle(tiny_bundle)
    assert info["unverified"] == SIDE_FILES and info["needs_migration"] is True and info["problems"] == []
    result = invoke("inspect", tiny_bundle)
    assert_one_line_error(result, f"is schema 1 (written by an older mmedge): its tokenizer and torch reference "
                                  f"are not hashed; run: mmedge migrate {tiny_bundle}")
    assert "sha256" in result.output and "unverified (schema_version 1" in result.output
    assert "torch/run.json, tokenizer.json" in result.output
    refused = invoke("inspect", tiny_bundle, "--json")  # one JSON document: the refusal (docs/cli.md)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    error = next(line for line in refused.output.splitlines() if line.startswith('{"error"'))  # E5's JSON error
    assert f"run: mmedge migrate {tiny_bundle}" in json.loads(error)["error"]["message"]
    assert '"components"' not in refused.output  # the refusal is the one document, not a report plus an error
    assert (tiny_bundle / MANIFEST).read_bytes() == before  # read-only
    with pytest.raises(BundleError, match="is schema 1"):
        Pipeline.from_bundle(tiny_bundle)
    assert invoke("migrate", tiny_bundle).exit_code == 0
    result = invoke("inspect", tiny_bundle, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["unverified"] == [] and info["needs_migration"] is False and info["schema_version"] == 2


def test_inspect_hashes_every_artifact(tiny_bundle: Path):
    (tiny_bundle / "fusion_head.onnx").write_bytes((tiny_bundle / "fusion_head.onnx").read_bytes()[:-1] + b"\0")
    assert_one_line_error(invoke("inspect", tiny_bundle), "bundle file altered")


def test_inspect_hashes_side_files(tiny_bundle: Path):
    with open(tiny_bundle / "torch" / "run.json", "a") as fh:
        fh.write(" ")
    assert_one_line_error(invoke("inspect", tiny_bundle), "bundle file altered")


def test_inspect_trtexec_prints_min_opt_max_shapes(quantized_bundle_pristine: Path):
    from mmedge.bundle import Bundle

    bundle = Bundle.load(quantized_bundle_pristine)
    seq = bundle.components["text"].inputs[0].ranges["seq"]
    result = invoke("inspect", quantized_bundle_pristine, "--trtexec")
    assert result.exit_code == 0, result.output
    flags = (f"--minShapes=input_ids:1x{seq[0]},attention_mask:1x{seq[0]} "
             f"--optShapes=input_ids:1x{seq[1]},attention_mask:1x{seq[1]} "
             f"--maxShapes=input_ids:64x{seq[2]},attention_mask:64x{seq[2]}")
    text_lines = [line for line in result.output.splitlines() if line.startswith("trtexec --onnx=") and "text." in line]
    assert len(text_lines) == 3 and all(line.endswith(flags) and "--stronglyTyped" in line for line in text_lines)
    assert "--minShapes=pixel_values:1x" in result.output and "--maxShapes=waveform:64x" in result.output
    info = json.loads(invoke("inspect", quantized_bundle_pristine, "--json").stdout)
    assert set(info["trtexec"]["fusion_head"]) == {"fp32", "fp16", "int8-trt"}  # what TensorRT builds
    rows = [row for comp in info["components"].values() for row in comp["artifacts"]]
    assert all(row["metadata"]["mmedge.precision"] == row["precision"] for row in rows)
    assert all(row["opset_domains"] == ["ai.onnx"] for row in rows)  # unused domains are gone
