"""Every command under the runtime-only install (`pip install mmedge`: no torch, onnx, matplotlib, …).

A command that needs an extra stops at once with one line naming the command and `pip install
'mmedge[EXTRA]'`, exit code 3, no traceback; the runtime commands (predict / eval / bench on ONNX
Runtime with an existing bundle and a manifest) succeed. The bundle and manifest are built in the
normal environment first; each command then runs in a fresh interpreter that cannot import the extras.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import write_digits_manifest
from runtime_only import run_runtime_only

from mmedge.cli.main import app
from mmedge.data.digits import LABELS

# command → (arguments after the command, the extra it needs); {B} bundle, {R} run, {M} manifest, {T} tmp dir,
# {I} / {A} an image / audio file of the manifest.
NEEDS_AN_EXTRA: dict[str, tuple[list[str], str]] = {
    "train": (["--out", "{T}/run", "--epochs", "1"], "train"),
    "export": (["{R}", "--out", "{T}/b"], "train"),
    "quantize": (["{B}", "--precision", "int8", "--calib", "{M}"], "train"),
    "demo": (["--workdir", "{T}/d", "--out", "{T}/db"], "train"),
    "inspect": (["{B}"], "train"),
    "build": (["{B}", "--precision", "fp32"], "gpu"),
    "serve": (["{B}"], "serve"),
    "eval --report": (["{B}", "--data", "{M}", "--report", "{T}/r"], "train"),
    "eval (digits)": (["{B}"], "train"),
    "predict --backend torch": (["{B}", "--text", "one", "--backend", "torch"], "train"),
    "bench (torch reference)": (["{B}", "--data", "{M}", "--iters", "2"], "train"),
    "bench --report": (["{B}", "--backends", "onnxruntime", "--data", "{M}", "--report", "{T}/r"], "train"),
}
RUNS_HERE: dict[str, list[str]] = {
    "predict": ["{B}", "--text", "three", "--image", "{I}", "--audio", "{A}", "--json"],
    "eval": ["{B}", "--data", "{M}", "--json"],
    "bench": ["{B}", "--backends", "onnxruntime", "--data", "{M}", "--split", "all", "--warmup", "0", "--iters",
              "2", "--no-stages", "--json"],
    "migrate": ["{B}", "--json"],
    "export-triton": ["{B}", "--out", "{T}/triton", "--json"],
    "export-inputs": ["{B}", "--out", "{T}/inputs", "--data", "{M}", "--split", "test", "--count", "2", "--json"],
    "doctor": ["--json"],  # its verdict (exit 0 or 1) is its own business; it must run and parse here
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled JSONL with real PNG and WAV files (no split field: every row is scored)."""
    return write_digits_manifest(tmp_path_factory.mktemp("manifest"), 10)


def fill(args: list[str], bundle: Path, run: Path, manifest: Path, tmp: Path) -> list[str]:
    """Substitute the placeholders."""
    values = {"{B}": bundle, "{R}": run, "{M}": manifest, "{T}": tmp, "{I}": manifest.parent / "0.png",
              "{A}": manifest.parent / "0.wav"}
    out = []
    for a in args:
        for key, value in values.items():
            a = a.replace(key, str(value))
        out.append(a)
    return out


def test_the_matrix_covers_every_command() -> None:
    import typer

    from mmedge.cli.clicompat import Context

    group = typer.main.get_command(app)
    registered = set(group.list_commands(Context(group)))  # type: ignore[attr-defined]
    covered = {case.split()[0] for case in NEEDS_AN_EXTRA} | set(RUNS_HERE)
    assert registered == covered, f"add to this matrix: {sorted(registered - covered)}"


@pytest.mark.parametrize("case", list(NEEDS_AN_EXTRA))
def test_needs_an_extra(case: str, tiny_bundle_pristine: Path, tiny_run: Path, manifest: Path,
                        tmp_path: Path) -> None:
    args, extra = NEEDS_AN_EXTRA[case]
    command = case.split()[0]
    proc = run_runtime_only(command, *fill(args, tiny_bundle_pristine, tiny_run, manifest, tmp_path))
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: mmedge {command}") and f"pip install 'mmedge[{extra}]'" in lines[0], lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()  # stopped before any work
    json_proc = run_runtime_only(command, *fill(args, tiny_bundle_pristine, tiny_run, manifest, tmp_path), "--json")
    error = json.loads(json_proc.stderr)["error"]
    assert json_proc.returncode == 3 and error["extra"] == extra and json_proc.stdout == ""


@pytest.mark.parametrize("command", list(RUNS_HERE))
def test_runs_without_extras(command: str, tiny_bundle_pristine: Path, tiny_run: Path, manifest: Path,
                             tmp_path: Path) -> None:
    proc = run_runtime_only(command, *fill(RUNS_HERE[command], tiny_bundle_pristine, tiny_run, manifest, tmp_path))
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode in ((0, 1) if command == "doctor" else (0,)), (proc.returncode, proc.stderr)
    data = json.loads(proc.stdout)  # exactly one JSON document
    if command == "predict":
        assert data["label"] in LABELS and data["present"] == ["text", "image", "audio"]
    if command == "eval":
        assert data[0]["subsets"]["all"]["n"] == 10
    if command == "bench":
        assert [r["config"]["backend"] for r in data["results"]] == ["onnxruntime"]
        assert all(r["cost"] is None for r in data["results"])  # MACs need onnx: not counted, with a note
        assert "MACs and parameters not counted" in proc.stderr and "pip install 'mmedge[train]'" in proc.stderr
