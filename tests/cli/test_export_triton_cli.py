"""`mmedge export-triton` through the real CLI: the repository, --json, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import assert_one_line_error, invoke


def test_writes_a_repository(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    result = invoke("export-triton", tiny_bundle_pristine, "--out", out, "--json", "--name", "digits",
                    "--instances", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["models"] == ["digits_text", "digits_image", "digits_audio", "digits_fusion_head",
                                 "digits_preprocess", "digits"]
    assert summary["command"] == f"tritonserver --model-repository {out.resolve()}"
    assert sorted(p.name for p in out.iterdir()) == sorted([*summary["models"], "README.md"])
    assert 'name: "digits"' in (out / "digits" / "config.pbtxt").read_text()


def test_errors_are_one_line(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("export-triton", tiny_bundle_pristine, "--out", tmp_path, "--platform", "tvm"),
                          "--platform must be one of onnxruntime, tensorrt")
    assert_one_line_error(invoke("export-triton", tiny_bundle_pristine, "--out", tmp_path), "already exists")
    assert_one_line_error(invoke("export-triton", tmp_path / "nope", "--out", tmp_path / "r"), "nope")
    assert_one_line_error(invoke("export-triton", tiny_bundle_pristine, "--out", tmp_path / "t", "--platform",
                                 "tensorrt"), "mmedge build")
