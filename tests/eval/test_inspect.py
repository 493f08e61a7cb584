"""`mmedge inspect` verifies every recorded file, checks each graph against bundle.json and reports unverified files."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import assert_one_line_error, invoke

from mmedge.bundle import MANIFEST
from mmedge.eval.inspect import inspect_bundle
from mmedge.runtime.pipeline import Pipeline

SIDE_FILES = ["tokenizer.json", "torch/model.safetensors", "torch/run.json"]


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
    assert all("problems" in row for comp in info["components"].values() for row in comp["artifacts"])


def test_schema_1_bundle_loads_and_is_reported_unverified(tiny_bundle: Path):
    _downgrade(tiny_bundle)
    assert inspect_bundle(tiny_bundle)["unverified"] == SIDE_FILES
    result = invoke("inspect", tiny_bundle)
    assert result.exit_code == 0, result.output
    assert "unverified" in result.output and "tokenizer.json" in result.output
    with Pipeline.from_bundle(tiny_bundle) as pipe:  # still loads and predicts (compatibility)
        assert pipe.predict(text="one").label


def test_inspect_hashes_every_artifact(tiny_bundle: Path):
    (tiny_bundle / "fusion_head.onnx").write_bytes((tiny_bundle / "fusion_head.onnx").read_bytes()[:-1] + b"\0")
    assert_one_line_error(invoke("inspect", tiny_bundle), "bundle file altered")


def test_inspect_hashes_side_files(tiny_bundle: Path):
    with open(tiny_bundle / "torch" / "run.json", "a") as fh:
        fh.write(" ")
    assert_one_line_error(invoke("inspect", tiny_bundle), "bundle file altered")
