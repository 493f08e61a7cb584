"""`mmedge bench` and `mmedge eval` piped to a file (a CI log): every table cell whole, numbers intact.

Before: rich cut tables to 80 columns off a terminal (`2.4…`). The commands run in a fresh
interpreter with stdout and stderr as pipes, as in `mmedge bench … > results.txt`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import write_digits_manifest
from runtime_only import run_cli

from mmedge.bench.report import load_json
from mmedge.bench.summary import result_row


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled JSONL with real PNG and WAV files."""
    return write_digits_manifest(tmp_path_factory.mktemp("pipe_manifest"), 12)


def no_columns() -> dict[str, str]:
    """The environment of a CI job: COLUMNS unset (rich then assumed 80)."""
    os.environ.pop("COLUMNS", None)
    return {}


def table_rows(text: str) -> list[list[str]]:
    """Body rows of every rich table in `text`, as stripped cells."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def assert_whole(text: str) -> None:
    """No truncated cell, and no row folded onto a second line (each body line starts a new row)."""
    assert "…" not in text, text
    rows = table_rows(text)
    assert rows and all(row[0] for row in rows), text


def test_bench_piped(tiny_bundle_pristine: Path, manifest: Path, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = tmp_path / "bench.json"
    proc = run_cli("bench", tiny_bundle_pristine, "--backends", "onnxruntime", "--precisions", "fp32", "--batch",
                   "1,2", "--data", manifest, "--split", "all", "--warmup", "0", "--iters", "3", "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert_whole(proc.stdout)
    lines = proc.stdout.splitlines()
    for result in load_json(out).results:
        row = next(line for line in lines if line.startswith(f"│ {result.config.key} "))
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells == result_row(result), (cells, result_row(result))  # every figure, whole, on its row
    assert "cost model" in proc.stdout and "wrote" in proc.stderr


def test_eval_piped(quantized_bundle_pristine: Path, manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["eval", quantized_bundle_pristine, "--data", manifest, "--precision", "fp32,fp16,int8"]
    for columns in (None, "80"):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout
        if columns is None:
            assert_whole(proc.stdout)
            reference = json.loads(run_cli(*args, "--json").stdout)
            rows: dict[str, list[list[str]]] = {}
            for row in table_rows(proc.stdout):
                rows.setdefault(row[0], []).append(row)
            for i, result in enumerate(reference):  # one subset table per precision, in order
                for subset, fig in result["subsets"].items():
                    assert f"{fig['accuracy']:.4f}" in rows[subset][i], (subset, rows[subset][i])
                    assert f"{int(fig['n'])}" == rows[subset][i][-1]
            for rep in (r["precision_report"] for r in reference if "precision_report" in r):
                row = rows[rep["precision"]][-1]  # the accuracy-vs-precision table
                assert row[1] == f"{rep['accuracy']:.4f}" and f"{100 * rep['agreement_with_fp32']:.2f}%" in row
        else:
            assert max(len(line) for line in proc.stdout.splitlines()) <= 80  # wrapped, not cut


def test_nothing_but_the_document_on_stdout_in_json_mode(tiny_bundle_pristine: Path, manifest: Path) -> None:
    proc = run_cli("bench", tiny_bundle_pristine, "--backends", "onnxruntime", "--data", manifest, "--split", "all",
                   "--warmup", "0", "--iters", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["stats"]["count"] == 2
    assert "model latency" in proc.stderr or "Power" in proc.stderr  # notes stay on stderr
    assert np.isfinite(json.loads(proc.stdout)["results"][0]["stats"]["p50_ms"])
