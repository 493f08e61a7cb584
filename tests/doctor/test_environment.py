"""The live probes on this machine (2-core x86 CPU VM, no GPU) and the environment file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmedge.doctor.environment import Environment, gather, requirements
from mmedge.doctor.report import doctor, load_environment
from mmedge.doctor.rules import diagnose
from mmedge.errors import InputError


@pytest.fixture(scope="module")
def here() -> Environment:
    return gather()


def test_gather_reads_this_cpu_machine(here: Environment):
    import importlib.metadata

    import onnxruntime
    import torch

    assert here.gpus == [] and here.cuda_driver is None and not here.is_jetson  # no GPU, not a Jetson
    assert "CPUExecutionProvider" in (here.ort_providers or [])
    assert here.ort_providers == onnxruntime.get_available_providers()
    assert here.version("torch") == torch.__version__ and here.version("openvino") is not None
    assert here.version("openvino") == importlib.metadata.version("openvino")
    assert here.tensorrt is None  # this venv has at most tensorrt-stubs
    assert here.tools["polygraphy"] is not None and here.tools["trtexec"] is None  # dev extra here, no TensorRT
    core, extras = requirements()
    assert "onnxruntime" in core and "torch" in extras["train"] and here.extras == extras


def test_doctor_verdicts_on_this_machine(here: Environment):
    checks = {c.name: c for c in diagnose(here)}
    assert checks["onnxruntime"].status == "ok" and checks["torch"].status == "ok"
    assert checks["openvino"].status == "ok" and checks["[train]"].status == "ok"
    assert checks["gpu"].status == "n/a" and checks["tensorrt"].status == "n/a"
    assert checks["TensorRT"].status == "missing" and "pip install 'mmedge[gpu]'" in (checks["TensorRT"].fix or "")
    assert doctor(here).exit_code == 0  # only optional GPU pieces are missing


def test_load_environment_accepts_a_doctor_json_and_rejects_junk(tmp_path: Path, here: Environment):
    whole = tmp_path / "doctor.json"
    whole.write_text(json.dumps(doctor(here).to_json()))
    assert load_environment(whole) == here
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"python": "3.11", "machine": "x86_64", "gpu_count": 3}))
    with pytest.raises(InputError, match="unknown environment key"):
        load_environment(bad)
    with pytest.raises(InputError, match="not found"):
        load_environment(tmp_path / "missing.json")


@pytest.mark.parametrize(("key", "value"), [
    ("python", 3.11), ("packages", ["onnxruntime"]), ("packages", {"onnxruntime": 1}), ("core", "numpy"),
    ("extras", {"train": "torch"}), ("ort_providers", "CPUExecutionProvider"), ("tensorrt_stubs_only", "no"),
    ("cores", "2"), ("cores", True), ("gpus", [["L4"]]), ("tools", {"trtexec": 1}),
])
def test_a_mistyped_recorded_environment_is_bad_input(tmp_path: Path, key: str, value: object):
    from typer.testing import CliRunner

    from mmedge.cli.main import app

    bad = tmp_path / "env.json"
    bad.write_text(json.dumps({"python": "3.11", "machine": "x86_64", key: value}))
    with pytest.raises(InputError, match=f"environment key '{key}' must be"):
        load_environment(bad)
    result = CliRunner().invoke(app, ["doctor", "--environment", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_every_environment_field_has_a_type_check(here: Environment):
    import dataclasses

    from mmedge.doctor.environment import FIELD_CHECKS

    for f in dataclasses.fields(Environment):
        assert str(f.type) in FIELD_CHECKS, f.name
    assert Environment.from_json(here.to_json()) == here  # every real value passes its check
