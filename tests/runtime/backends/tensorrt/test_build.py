"""`mmedge build` on CPU: profiles, options, the cache-hit path, and the no-TensorRT error."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import gpu_utils
import pytest
import typer
from typer.testing import CliRunner

from mmedge.bundle import Bundle
from mmedge.errors import BundleError, InputError, MissingDependencyError
from mmedge.runtime.backends.tensorrt.build import BuildOptions, build_bundle
from mmedge.runtime.backends.tensorrt.cache import (
    EngineSidecar,
    engine_key,
    engine_key_fields,
    engine_stem,
)
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, tensorrt_available
from mmedge.runtime.backends.tensorrt.profiles import ShapeOverrides, component_profiles, parse_shape_overrides
from mmedge.specs import TensorSpec

ENV = TrtEnvironment(
    tensorrt="10.8.0.43", gpu="NVIDIA H200", compute_capability="9.0", cuda_driver="12.8", sm_count=132, dla_cores=0
)
JETSON = dataclasses.replace(ENV, gpu="Orin", compute_capability="8.7", l4t="R36.4.3", sm_count=16, dla_cores=2)
TEXT = [
    TensorSpec(n, "int64", ("batch", "seq"), {"batch": (1, 2, 4), "seq": (1, 8, 16)})
    for n in ("input_ids", "attention_mask")
]
needs_no_trt = pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return gpu_utils.make_tiny_bundle(tmp_path / "bundle")


# ---- profiles -------------------------------------------------------------------------------
def test_profiles_come_from_bundle_ranges() -> None:
    profiles = component_profiles(TEXT, ShapeOverrides())
    assert profiles["input_ids"] == ((1, 1), (2, 8), (4, 16))


def test_axis_and_tensor_overrides() -> None:
    overrides = parse_shape_overrides(["batch:1/8/32", "attention_mask:2x4/2x8/2x16"], TEXT)
    profiles = component_profiles(TEXT, overrides)
    assert profiles["input_ids"] == ((1, 1), (8, 8), (32, 16))
    assert profiles["attention_mask"] == ((2, 4), (2, 8), (2, 16))


def test_comma_separated_overrides() -> None:
    overrides = parse_shape_overrides(["batch:1/2/3,seq:4/5/6"], TEXT)
    assert overrides.axes == {"batch": (1, 2, 3), "seq": (4, 5, 6)}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("batch=1/2/3", "expected NAME:MIN/OPT/MAX"),
        ("nope:1/2/3", "neither an input nor a dynamic axis"),
        ("batch:4/2/8", "min <= opt <= max"),
        ("batch:1x2/2x2/3x2", "single values"),
        ("input_ids:1/2/3", "rank 2"),
        ("batch:0/1/2", ">= 1"),
    ],
)
def test_bad_overrides_are_input_errors(item: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_shape_overrides([item], TEXT)


def test_dynamic_axis_without_range_asks_for_shapes() -> None:
    spec = TensorSpec("x", "float32", ("batch", 4))
    with pytest.raises(InputError, match="--shapes batch:MIN/OPT/MAX"):
        component_profiles([spec], ShapeOverrides())


def test_static_inputs_need_no_profile() -> None:
    assert component_profiles([TensorSpec("x", "float32", (1, 4))], ShapeOverrides()) == {}


# ---- options --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BuildOptions(gpu_fallback=True), "--gpu-fallback only applies"),
        (BuildOptions(workspace_gib=0), "--workspace"),
        (BuildOptions(hardware_compat="turing+"), "--hardware-compat"),
        (BuildOptions(dla_core=0, hardware_compat="ampere+"), "cannot be combined"),
    ],
)
def test_contradictory_options(options: BuildOptions, message: str, bundle_dir: Path) -> None:
    with pytest.raises(InputError, match=message):
        build_bundle(bundle_dir, options, env=ENV)


def test_missing_precision_artifact_names_the_fix(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="mmedge quantize"):
        build_bundle(bundle_dir, BuildOptions(precision="int8", components=("text",)), env=ENV)


# ---- cache hit without TensorRT -------------------------------------------------------------
def _plant_cached_engine(bundle_dir: Path, component: str, precision: str) -> EngineSidecar:
    """Write what a previous build on ENV would have left: the plan and its sidecar."""
    bundle = Bundle.load(bundle_dir)
    comp = bundle.components[component]
    profiles = component_profiles(comp.inputs, ShapeOverrides())
    fields = engine_key_fields(
        ENV,
        component=component,
        precision=precision,
        onnx_sha256=comp.artifacts[precision].sha256,
        profiles=profiles,
        flags=BuildOptions(precision=precision).flags(),
    )
    key = engine_key(fields)
    payload = f"fake plan {component}".encode()
    stem = engine_stem(component, precision, key)
    (bundle_dir / "engines").mkdir(exist_ok=True)
    (bundle_dir / f"engines/{stem}.plan").write_bytes(payload)
    sidecar = EngineSidecar(
        key=key,
        fields=fields,
        plan=f"engines/{stem}.plan",
        plan_sha256=hashlib.sha256(payload).hexdigest(),
        plan_bytes=len(payload),
        built_at="2025-01-01T00:00:00+00:00",
        build_seconds=2.0,
        builder_log=f"engines/{stem}.log",
    )
    sidecar.write(bundle_dir / f"engines/{stem}.json")
    return sidecar


def test_second_build_reuses_the_cache_and_records_engines(bundle_dir: Path) -> None:
    planted = {c: _plant_cached_engine(bundle_dir, c, "fp16") for c in ("text", "fusion_head")}
    report = build_bundle(
        bundle_dir, BuildOptions(precision="fp16", components=("text", "fusion_head")), env=ENV
    )
    assert [r.cached for r in report.results] == [True, True]
    assert {r.key for r in report.results} == {s.key for s in planted.values()}
    engines = json.loads((bundle_dir / "bundle.json").read_text())["engines"]
    record = engines["text"]["fp16"][planted["text"].key[:12]]
    assert record["plan"] == planted["text"].plan and record["gpu"] == "NVIDIA H200"
    assert Bundle.load(bundle_dir).engines == engines


@needs_no_trt
def test_changed_onnx_or_force_needs_a_real_build(bundle_dir: Path) -> None:
    _plant_cached_engine(bundle_dir, "text", "fp16")
    with pytest.raises(MissingDependencyError, match="tensorrt"):
        build_bundle(bundle_dir, BuildOptions(components=("text",), force=True), env=ENV)
    with pytest.raises(MissingDependencyError, match="tensorrt"):
        build_bundle(bundle_dir, BuildOptions(components=("text",), shapes=("batch:1/2/8",)), env=ENV)


@needs_no_trt
def test_tampered_cached_plan_is_rebuilt_not_trusted(bundle_dir: Path) -> None:
    sidecar = _plant_cached_engine(bundle_dir, "text", "fp16")
    (bundle_dir / sidecar.plan).write_bytes(b"tampered")
    with pytest.raises(MissingDependencyError):
        build_bundle(bundle_dir, BuildOptions(components=("text",)), env=ENV)


# ---- CLI ------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    from mmedge.cli import build

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    build.register(app)
    return app


@needs_no_trt
def test_cli_build_without_tensorrt_is_one_line_and_nonzero(bundle_dir: Path) -> None:
    result = CliRunner().invoke(_app(), ["build", str(bundle_dir), "--precision", "fp32"])
    assert result.exit_code != 0
    output = result.output.strip()
    assert "tensorrt" in output and "not installed" in output and "pip install tensorrt" in output
    assert "python3-libnvinfer" in output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output


def test_cli_build_rejects_bad_shapes_before_needing_tensorrt(bundle_dir: Path) -> None:
    result = CliRunner().invoke(_app(), ["build", str(bundle_dir), "--shapes", "nope:1/2/3"])
    assert result.exit_code == InputError.exit_code
    assert "neither an input nor a dynamic axis" in result.output


def test_cli_build_missing_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["build", str(tmp_path / "absent")])
    assert result.exit_code != 0 and "bundle folder not found" in result.output


def test_importing_the_backend_loads_no_gpu_library() -> None:
    code = (
        "import sys, mmedge, mmedge.cli.build\n"
        "import mmedge.runtime.backends.tensorrt.build, mmedge.runtime.backends.tensorrt.runner\n"
        "import mmedge.runtime.backends.tensorrt.executor, mmedge.runtime.backends.onnxruntime_gpu.runner\n"
        "bad = [m for m in ('tensorrt', 'cuda.bindings.runtime', 'pycuda', 'pycuda.driver', 'onnxruntime')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_env_dataclass_round_trip() -> None:
    assert TrtEnvironment.from_json(ENV.to_json()) == ENV
    assert dataclasses.replace(ENV, l4t="R36.4.3").to_json()["l4t"] == "R36.4.3"
    assert ENV.to_json() == dataclasses.asdict(ENV)  # key order and None values as before


def test_build_json_and_shared_constants(bundle_dir: Path) -> None:
    from mmedge import bundle as bundle_module
    from mmedge import precision
    from mmedge.runtime.backends.tensorrt import build

    assert build.ENGINE_DIR is bundle_module.ENGINE_DIR and build.TRT_INT8 is precision.TRT_INT8
    _plant_cached_engine(bundle_dir, "text", "fp16")
    report = build_bundle(bundle_dir, BuildOptions(precision="fp16", components=("text",)), env=ENV)
    data = json.loads(json.dumps(report.to_json()))
    assert list(data) == ["bundle", "precision", "environment", "engines", "skipped"]
    engine = data["engines"][0]
    assert list(engine) == ["component", "precision", "plan", "sidecar", "key", "cached", "seconds", "plan_bytes",
                            "builder_log"]
    assert engine["plan"] == str(report.results[0].plan) and engine["cached"] is True
    assert engine["builder_log"] in (None, str(report.results[0].builder_log))


def test_int8_builds_from_the_tensorrt_flavoured_qdq(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    source = bundle.components["image"].artifacts["fp32"].file
    bundle.add_artifact("image", "int8", source)  # only the CPU flavour present
    bundle.save()
    with pytest.raises(BundleError, match="--precision int8 --target tensorrt"):
        build_bundle(bundle_dir, BuildOptions(precision="int8", components=("image",)), env=ENV)
    bundle.add_artifact("image", "int8-trt", source)
    bundle.save()
    _plant_cached_engine(bundle_dir, "image", "int8-trt")
    report = build_bundle(bundle_dir, BuildOptions(precision="int8", components=("image",)), env=ENV)
    assert report.precision == "int8-trt" and report.results[0].cached
    assert "int8-trt" in Bundle.load(bundle_dir).engines["image"]


# ---- DLA and Jetson checks before TensorRT ----------------------------------------------------
def test_dla_with_a_shape_range_names_the_input_axis_and_the_shapes_fix(bundle_dir: Path) -> None:
    with pytest.raises(InputError) as info:
        build_bundle(bundle_dir, BuildOptions(components=("text",), dla_core=0), env=JETSON)
    message = str(info.value)
    assert "DLA engines need one fixed shape" in message and "'input_ids' axis 0 ('batch')" in message
    assert "--shapes batch:" in message and "seq:" in message and "\n" not in message
    with pytest.raises(InputError, match="DLA engines need one fixed shape"):  # --gpu-fallback does not hide it
        build_bundle(bundle_dir, BuildOptions(components=("text",), dla_core=0, gpu_fallback=True), env=JETSON)


@needs_no_trt
def test_dla_with_pinned_shapes_passes_the_check(bundle_dir: Path) -> None:
    options = BuildOptions(components=("text",), dla_core=0, shapes=("batch:2/2/2", "seq:8/8/8"))
    with pytest.raises(MissingDependencyError, match="tensorrt"):  # got as far as needing TensorRT
        build_bundle(bundle_dir, options, env=JETSON)


def test_dla_check_suggests_a_tensor_override_for_unnamed_axes() -> None:
    from mmedge.runtime.backends.tensorrt.profiles import check_dla_profiles

    with pytest.raises(InputError, match=r"'x' axis 0 ranges 1/4/8; pin them with --shapes x:4x3/4x3/4x3"):
        check_dla_profiles("c", [TensorSpec("x", "float32", (-1, 3))], {"x": ((1, 3), (4, 3), (8, 3))})
    check_dla_profiles("c", TEXT, {"input_ids": ((2, 8), (2, 8), (2, 8))})


def test_hardware_compat_is_refused_on_jetson(bundle_dir: Path) -> None:
    with pytest.raises(InputError, match="not supported on Jetson"):
        build_bundle(bundle_dir, BuildOptions(components=("text",), hardware_compat="ampere+"), env=JETSON)
