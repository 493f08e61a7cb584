"""doctor's verdicts on recorded machines: a Jetson Orin Nano (JetPack 6.1), an RTX 4090 with cuda-python 13 on a
CUDA 12 driver, an x86 GPU box without TensorRT, and this CPU machine — plus variants that must flip a verdict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mmedge.doctor.environment import Environment
from mmedge.doctor.report import doctor, load_environment
from mmedge.doctor.rules import Check, diagnose, exit_code, jetpack

DATA = Path(__file__).parent / "data"


def env_of(name: str) -> Environment:
    return load_environment(DATA / f"{name}.json")


def verdicts(env: Environment) -> dict[str, Check]:
    return {c.name: c for c in diagnose(env)}


def test_jetson_orin_nano_jetpack_61_runs_tensorrt():
    env = env_of("jetson_orin_nano_jp61")
    v = verdicts(env)
    assert env.is_jetson
    assert v["JetPack"].status == "ok" and "JetPack 6.1" in v["JetPack"].detail and "R36.4.0" in v["JetPack"].detail
    assert v["board"].detail == "NVIDIA Jetson Orin Nano Developer Kit"
    assert v["TensorRT"].status == "ok" and "10.3.0.30" in v["TensorRT"].detail
    assert v["cuda-python"].status == "ok" and "CUDA 12.6" in v["cuda-python"].detail
    for backend in ("tensorrt", "onnxruntime-cuda", "onnxruntime-trt", "onnxruntime"):
        assert v[backend].status == "ok", v[backend]
    assert v["runtime"].status == "ok"  # onnxruntime-gpu provides the onnxruntime module
    assert v["[gpu]"].status == "ok"  # TensorRT from JetPack's apt bindings counts
    assert v["power mode"].status == "warn" and "nvpmodel -m" in (v["power mode"].fix or "")
    assert v["torch"].status == "missing" and v["torch"].fix == "pip install 'mmedge[train]'"
    assert v["[train]"].fix == "pip install 'mmedge[train]'"
    assert exit_code(diagnose(env)) == 0  # only optional things missing, a warning


def test_jetpack_60_is_refused_with_the_upgrade():
    env = dataclasses.replace(env_of("jetson_orin_nano_jp61"), l4t="R36.3.0", tensorrt="8.6.2.3", power_mode="MAXN")
    v = verdicts(env)
    assert v["JetPack"].status == "error" and "JetPack 6.0" in v["JetPack"].detail
    assert v["TensorRT"].status == "error" and "8.6.2.3 is too old" in v["TensorRT"].detail
    assert "JetPack 6.1" in (v["TensorRT"].fix or "")
    assert v["tensorrt"].status == "missing" and v["power mode"].status == "ok"
    assert exit_code(diagnose(env)) == 1


def test_rtx_4090_cuda_python_13_on_a_cuda_12_driver_is_an_error():
    env = env_of("rtx4090_cuda12_cuda_python13")
    v = verdicts(env)
    assert v["cuda-python"].status == "error"
    assert "cuda-python 13.0.1 needs a CUDA 13 driver" in v["cuda-python"].detail and "12.4" in v["cuda-python"].detail
    assert v["cuda-python"].fix == "pip install 'cuda-python>=12.6,<13'"
    assert v["gpu 0"].status == "ok" and "RTX 4090, compute capability 8.9" in v["gpu 0"].detail
    assert v["TensorRT"].status == "ok" and "CUDA 12 build" in v["TensorRT"].detail
    assert exit_code(diagnose(env)) == 1
    fixed = dataclasses.replace(env, packages={**env.packages, "cuda-python": "12.6.2", "cuda-bindings": "12.6.2"})
    assert verdicts(fixed)["cuda-python"].status == "ok" and exit_code(diagnose(fixed)) == 0


def test_tensorrt_cuda_13_wheel_on_a_cuda_12_driver_is_an_error():
    env = dataclasses.replace(env_of("rtx4090_cuda12_cuda_python13"), tensorrt_cuda="13")
    check = verdicts(env)["TensorRT"]
    assert check.status == "error" and check.fix == "pip uninstall -y tensorrt-cu13 && pip install 'tensorrt-cu12>=10'"


def test_x86_gpu_box_without_tensorrt_names_each_fix():
    env = env_of("x86_l4_no_tensorrt")
    v = verdicts(env)
    assert v["TensorRT"].status == "missing" and v["TensorRT"].fix == "pip install 'tensorrt-cu12>=10'"
    assert v["tensorrt"].status == "missing"
    assert v["onnxruntime-cuda"].status == "missing"
    assert v["onnxruntime-cuda"].fix == "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
    assert v["cuda-python"].status == "missing" and v["cuda-python"].fix == "pip install 'cuda-python>=12.6,<13'"
    assert v["[gpu]"].fix == "pip install 'mmedge[gpu]' 'cuda-python>=12.6,<13'"  # not cuda-python 13 on driver 12
    assert v["jetson"].status == "n/a" and "JetPack" not in v
    assert exit_code(diagnose(env)) == 0


def test_cpu_machine_recorded():
    v = verdicts(env_of("cpu_x86_2c"))
    assert v["gpu"].status == "n/a" and v["onnxruntime"].status == "ok"
    assert v["TensorRT"].status == "missing" and "mmedge[gpu]" in (v["TensorRT"].fix or "")
    assert v["tensorrt"].status == "n/a" and v["cuda-python"].status == "n/a"
    assert exit_code(diagnose(env_of("cpu_x86_2c"))) == 0


def test_both_onnxruntime_packages_and_a_missing_core_dependency_are_errors():
    env = env_of("cpu_x86_2c")
    both = dataclasses.replace(env, packages={**env.packages, "onnxruntime-gpu": "1.20.1"})
    assert verdicts(both)["onnxruntime packages"].status == "error"
    broken = dataclasses.replace(env, packages={**env.packages, "tokenizers": None})
    check = verdicts(broken)["runtime"]
    assert check.status == "error" and check.fix == "pip install tokenizers"
    no_ort = dataclasses.replace(env, ort_providers=None, ort_error="ImportError: libonnxruntime.so")
    assert verdicts(no_ort)["onnxruntime"].status == "error"


@pytest.mark.parametrize(("l4t", "expected"), [("R36.4.0", "6.1"), ("R36.4.3", "6.2"), ("R36.4.4", "6.2.1"),
                                               ("R36.3.0", "6.0"), ("R35.6.0", "5.1"), ("R99.1", None), (None, None)])
def test_jetpack_from_l4t(l4t: str | None, expected: str | None):
    assert jetpack(l4t) == expected


def test_report_json_round_trips_the_environment():
    env = env_of("rtx4090_cuda12_cuda_python13")
    report = doctor(env).to_json()
    assert report["exit_code"] == 1 and report["counts"]["error"] == 1
    assert Environment.from_json(report["environment"]) == env


def test_outside_tools():
    jetson = verdicts(env_of("jetson_orin_nano_jp61"))
    assert jetson["trtexec"].status == "warn" and jetson["trtexec"].fix == "export PATH=$PATH:/usr/src/tensorrt/bin"
    assert jetson["polygraphy"].status == "missing" and jetson["polygraphy"].fix == "pip install 'mmedge[dev]'"
    assert verdicts(env_of("x86_l4_no_tensorrt"))["trtexec"].status == "missing"
    cpu = verdicts(env_of("cpu_x86_2c"))
    assert cpu["trtexec"].status == "n/a" and cpu["polygraphy"].status == "ok"
