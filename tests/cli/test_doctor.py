"""`mmedge doctor` through the real CLI: this machine exits 0, a mismatched recorded machine exits 1, --json parses."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import invoke

DATA = Path(__file__).parents[1] / "doctor" / "data"


def test_doctor_on_this_machine():
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "TensorRT" in result.output and "missing" in result.output and "pip install 'mmedge[gpu]'" in result.output
    assert "exit code 0" in result.output


def test_doctor_json_is_one_document():
    result = invoke("doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exit_code"] == 0 and report["counts"]["error"] == 0
    assert {c["name"]: c["status"] for c in report["checks"]}["onnxruntime"] == "ok"


def test_doctor_on_a_recorded_mismatch_exits_1():
    result = invoke("doctor", "--environment", DATA / "rtx4090_cuda12_cuda_python13.json", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    bad = [c for c in report["checks"] if c["status"] == "error"]
    assert [c["name"] for c in bad] == ["cuda-python"] and bad[0]["fix"] == "pip install 'cuda-python>=12.6,<13'"


def test_doctor_bad_environment_file_is_one_line_input_error(tmp_path: Path):
    path = tmp_path / "env.json"
    path.write_text("[1, 2]")
    result = invoke("doctor", "--environment", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
