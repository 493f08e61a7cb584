"""`--json` everywhere: one JSON document on stdout on success, one JSON error line on stderr on failure.

The runtime commands (predict, eval, bench, migrate, export-triton, export-inputs, doctor) are also
parsed under the runtime-only install in test_runtime_only.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mmedge.cli.clicompat import Context
from mmedge.cli.main import app

runner = CliRunner()


def run_json(*args: object) -> Any:
    """Run with --json; the parsed stdout document (asserting success and nothing else on stdout)."""
    result = runner.invoke(app, [*(str(a) for a in args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_export_quantize_inspect(tmp_path: Path, tiny_bundle_pristine: Path) -> None:
    run = tmp_path / "run"
    metrics = run_json("train", "--limit", "40", "--epochs", "1", "--modalities", "text,image", "--out", run)
    assert metrics["out"] == str(run) and "text+image" in metrics["test"]
    bundle = run_json("export", run, "--out", tmp_path / "bundle", "--samples", "4")
    assert set(bundle["components"]) == {"text", "image", "fusion_head"}
    copy = tmp_path / "q"
    shutil.copytree(tiny_bundle_pristine, copy)
    quantized = run_json("quantize", copy, "--precision", "fp16", "--components", "image", "--samples", "8")
    assert [a["precision"] for a in quantized["artifacts"]] == ["fp16"]
    info = run_json("inspect", copy)
    assert "fp16" in {a["precision"] for a in info["components"]["image"]["artifacts"]}


@pytest.mark.slow  # trains four models: ~1 min on 2 busy cores
def test_demo(tmp_path: Path) -> None:
    data = run_json("demo", "--workdir", tmp_path / "runs", "--out", tmp_path / "bundle", "--epochs", "1",
                    "--iters", "10")
    assert {"accuracy", "parity", "latency"} <= set(data)


GROUP = typer.main.get_command(app)
# bad input per command (a bundle/run/manifest that does not exist, an invalid value): exit code 2 everywhere
FAILING: dict[str, list[str]] = {
    "train": ["--data", "{T}/missing.jsonl", "--out", "{T}/run"],
    "export": ["{T}/no-run", "--out", "{T}/b"],
    "demo": ["--workdir", "{T}/d", "--out", "{T}/db", "--epochs", "0"],
    "doctor": ["--bogus-option"],
    "export-triton": ["{T}/nope", "--out", "{T}/repo"],
    "export-inputs": ["{T}/nope", "--out", "{T}/in"],
}


@pytest.mark.parametrize("command", GROUP.list_commands(Context(GROUP)))  # type: ignore[attr-defined]
def test_bad_input_is_exit_2_and_one_json_line_on_stderr(command: str, tmp_path: Path) -> None:
    args = [a.replace("{T}", str(tmp_path)) for a in FAILING.get(command, [str(tmp_path / "nope")])]
    result = runner.invoke(app, [command, *args, "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])["error"]
    assert error["exit_code"] == result.exit_code and error["message"]
