"""Cold start in `mmedge bench`: fresh processes, import → first answer, peak RSS, graph cache first vs warm."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmedge.bench.coldstart import cold_start_lines, cold_starts
from mmedge.bench.harness import BenchSpec, run_bench
from mmedge.bench.summary import to_markdown
from mmedge.bundle import Bundle
from mmedge.errors import MmedgeError

MODS = ["text", "image", "audio"]


def test_cold_start_in_a_bench_report(tiny_bundle_pristine: Path) -> None:
    spec = BenchSpec(tiny_bundle_pristine, ["onnxruntime"], warmup=0, iters=1, pool=2, stages=False, threads=1,
                     cold_start=["fp32"], cold_start_runs=2)
    report = run_bench(spec)
    (record,) = report.env["bench"]["cold_start"]
    assert record["precision"] == "fp32" and len(record["runs"]) == 2
    labels = Bundle.load(tiny_bundle_pristine).labels
    for run in record["runs"]:
        assert run["label"] in labels  # a real answer came back
        assert 0 < run["import_ms"] < run["total_ms"] and run["peak_rss_mb"] > 10
        assert run["total_ms"] >= run["import_ms"] + run["load_ms"] + run["first_answer_ms"] - 1
    assert record["first_boot_ms"] == record["runs"][0]["total_ms"]
    text = to_markdown(report)
    assert "## Cold start" in text and "onnxruntime/fp32" in text


def test_a_failing_cold_start_is_a_record_not_a_crash(tiny_bundle: Path) -> None:
    (tiny_bundle / "text.onnx").write_bytes(b"garbage")  # every fresh process refuses the bundle
    (record,) = cold_starts(tiny_bundle, ["fp32"], MODS, threads=1, runs=2)
    assert "bundle file altered" in record["error"]
    lines = cold_start_lines({"bench": {"cold_start": [record]}})
    assert any("bundle file altered" in line for line in lines)


def test_a_child_that_prints_nothing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmedge.bench import coldstart

    monkeypatch.setattr(coldstart, "SCRIPT", "import sys; sys.stderr.write('the loader said no\\n')")
    with pytest.raises(MmedgeError, match=r"printed no output .*the loader said no"):
        coldstart.one_run({}, dict(os.environ))


def test_cold_start_of_a_manifest_bench_uses_its_data(tiny_bundle_pristine: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf
    from PIL import Image

    import mmedge.data.digits as digits

    rows = []
    for i, s in enumerate(digits.load_digits("test", limit=3).samples):
        Image.fromarray(s.image).save(tmp_path / f"{i}.png")
        sf.write(tmp_path / f"{i}.wav", s.audio, 8000)
        rows.append(json.dumps({"text": s.text, "image": f"{i}.png", "audio": f"{i}.wav",
                                "label": digits.LABELS[s.label]}))
    (tmp_path / "data.jsonl").write_text("\n".join(rows) + "\n")

    def no_digits(*args: object, **kwargs: object) -> None:
        raise AssertionError("a manifest bench must not load the digits dataset")

    monkeypatch.setattr(digits, "load_digits", no_digits)
    spec = BenchSpec(tiny_bundle_pristine, ["onnxruntime"], warmup=0, iters=1, pool=2, stages=False, threads=1,
                     data=str(tmp_path / "data.jsonl"), split="all", cold_start=["fp32"], cold_start_runs=2)
    (record,) = run_bench(spec).env["bench"]["cold_start"]
    assert "error" not in record and len(record["runs"]) == 2


def test_cold_start_rows_of_a_suite_name_their_bundle() -> None:
    record = {"backend": "onnxruntime", "precision": "int8", "import_ms": 1.0, "load_ms": 2.0,
              "first_answer_ms": 3.0, "total_ms": 6.0, "peak_rss_mb": 90.0, "first_boot_ms": 9.0}
    lines = cold_start_lines({"bench_runs": [{"bundle": "tiny", "cold_start": [record]},
                                             {"bundle": "edge", "cold_start": [record]}]})
    rows = [line for line in lines if line.startswith("| ") and "/int8" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| tiny/onnxruntime/int8", "| edge/onnxruntime/int8"]
