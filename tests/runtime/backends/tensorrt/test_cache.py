"""Engine cache key, sidecar, compatibility checks and engine selection: CPU-only, no TensorRT."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mmedge.errors import EngineError, InputError
from mmedge.runtime.backends.tensorrt.cache import (
    KEY_SCHEMA,
    BuildFlags,
    EngineSidecar,
    check_compatible,
    engine_key,
    engine_key_fields,
    read_plan,
    record_engine,
    select_engine,
)
from mmedge.runtime.backends.tensorrt.env import (
    TrtEnvironment,
    check_build_target,
    read_board_model,
    read_l4t_release,
    short_version,
    tensorrt_cuda_major,
)

ORIN = TrtEnvironment(
    tensorrt="10.3.0.30",
    gpu="Orin",
    compute_capability="8.7",
    cuda_driver="12.6",
    l4t="R36.4.3",
    sm_count=16,
    memory_mib=62841,
    board="NVIDIA Jetson AGX Orin Developer Kit",
    dla_cores=2,
    tensorrt_cuda="12",
)
# What an Orin Nano reports: same GPU name, compute capability, TensorRT, driver and L4T as AGX Orin.
ORIN_NANO = dataclasses.replace(
    ORIN, sm_count=8, memory_mib=7620, board="NVIDIA Jetson Orin Nano Developer Kit", dla_cores=0
)
H200 = TrtEnvironment(
    tensorrt="10.8.0.43", gpu="NVIDIA H200", compute_capability="9.0", cuda_driver="12.8",
    sm_count=132, memory_mib=143771, dla_cores=0, tensorrt_cuda="12",
)
PROFILES = {"input_ids": ((1, 1), (4, 64), (8, 128)), "attention_mask": ((1, 1), (4, 64), (8, 128))}


def fields(env: TrtEnvironment = ORIN, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "component": "text",
        "precision": "fp16",
        "onnx_sha256": "ab" * 32,
        "profiles": PROFILES,
        "flags": BuildFlags(),
    }
    args.update(changes)
    return engine_key_fields(env, **args)


def make_sidecar(
    env: TrtEnvironment = ORIN, payload: bytes = b"plan-bytes", **flag_changes: Any
) -> EngineSidecar:
    key_fields = fields(env, flags=BuildFlags(**flag_changes))
    key = engine_key(key_fields)
    return EngineSidecar(
        key=key,
        fields=key_fields,
        plan=f"engines/text.fp16.{key[:12]}.plan",
        plan_sha256=hashlib.sha256(payload).hexdigest(),
        plan_bytes=len(payload),
        built_at="2025-01-01T00:00:00+00:00",
        build_seconds=1.5,
        builder_log=f"engines/text.fp16.{key[:12]}.log",
    )


# ---- key ------------------------------------------------------------------------------------
def test_key_is_stable_and_order_independent() -> None:
    assert engine_key(fields()) == engine_key(fields())
    reordered = dict(reversed(list(fields().items())))
    assert engine_key(reordered) == engine_key(fields())
    assert len(engine_key(fields())) == 64


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrtEnvironment)])
def test_key_changes_with_every_environment_field(name: str) -> None:
    current = getattr(ORIN, name)
    changed: Any = current + 1 if isinstance(current, int) else (current or "") + "-other"
    other = dataclasses.replace(ORIN, **{name: changed})
    assert engine_key(fields(other)) != engine_key(fields(ORIN))


@pytest.mark.parametrize(
    "change",
    [
        {"component": "image"},
        {"precision": "int8"},
        {"onnx_sha256": "cd" * 32},
        {"profiles": {**PROFILES, "input_ids": ((1, 1), (4, 64), (8, 256))}},
        {"profiles": {"input_ids": PROFILES["input_ids"]}},
    ],
)
def test_key_changes_with_build_inputs(change: dict[str, Any]) -> None:
    assert engine_key(fields(**change)) != engine_key(fields())


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(BuildFlags)])
def test_key_changes_with_every_build_flag(name: str) -> None:
    base = BuildFlags()
    value = getattr(base, name)
    new: Any = {
        "workspace_gib": 8.0,
        "dla_core": 0,
        "gpu_fallback": True,
        "version_compatible": True,
        "hardware_compat": "ampere+",
        "strongly_typed": not value,
    }[name]
    assert engine_key(fields(flags=dataclasses.replace(base, **{name: new}))) != engine_key(fields())


def test_dla_core_number_changes_key() -> None:
    assert engine_key(fields(flags=BuildFlags(dla_core=0))) != engine_key(
        fields(flags=BuildFlags(dla_core=1))
    )


# ---- sidecar --------------------------------------------------------------------------------
def test_sidecar_round_trip(tmp_path: Path) -> None:
    sidecar = make_sidecar()
    sidecar.io = [{"name": "input_ids", "mode": "input", "dtype": "DataType.INT64", "shape": [-1, -1]}]
    path = tmp_path / "engines" / "x.json"
    sidecar.write(path)
    again = EngineSidecar.read(path)
    assert again == sidecar
    assert again.environment == ORIN
    assert again.flags == BuildFlags()
    assert again.component == "text" and again.precision == "fp16"
    assert engine_key(again.fields) == again.key


def test_sidecar_unreadable_is_engine_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(EngineError, match="unreadable"):
        EngineSidecar.read(path)
    with pytest.raises(EngineError, match="missing"):
        EngineSidecar.read(tmp_path / "absent.json")


# ---- compatibility --------------------------------------------------------------------------
def test_mismatch_message_names_both_machines_and_the_rebuild_command() -> None:
    with pytest.raises(EngineError) as info:
        check_compatible(make_sidecar(ORIN), H200, "export/gpu")
    message = str(info.value)
    assert (
        "was built for TensorRT 10.3 on Orin (sm_87, 16 SMs, NVIDIA Jetson AGX Orin Developer Kit, 2 DLA); "
        "this is TensorRT 10.8 on NVIDIA H200 (sm_90, 132 SMs)" in message
    )
    assert message.endswith("rebuild with: mmedge build export/gpu --precision fp16 --components text")
    assert "\n" not in message


def test_same_environment_is_compatible() -> None:
    check_compatible(make_sidecar(ORIN), ORIN, "b")


@pytest.mark.parametrize(
    "current",
    [
        dataclasses.replace(ORIN, tensorrt="10.3.0.31"),
        dataclasses.replace(ORIN, gpu="Orin Nano"),
        dataclasses.replace(ORIN, compute_capability="8.6"),
    ],
)
def test_any_trt_or_gpu_difference_is_a_mismatch(current: TrtEnvironment) -> None:
    with pytest.raises(EngineError, match="rebuild with"):
        check_compatible(make_sidecar(ORIN), current, "b")


def test_driver_or_l4t_difference_alone_still_loads() -> None:
    check_compatible(make_sidecar(ORIN), dataclasses.replace(ORIN, cuda_driver="12.8", l4t="R36.5.0"), "b")


def test_version_compatible_engine_loads_on_newer_tensorrt_only() -> None:
    sidecar = make_sidecar(ORIN, version_compatible=True)
    check_compatible(sidecar, dataclasses.replace(ORIN, tensorrt="10.8.0.43"), "b")
    with pytest.raises(EngineError, match="--version-compatible"):
        check_compatible(sidecar, dataclasses.replace(ORIN, tensorrt="10.2.0.1"), "b")


def test_hardware_compatible_engine_loads_on_other_ampere_plus_gpu() -> None:
    sidecar = make_sidecar(H200, hardware_compat="ampere+")
    check_compatible(sidecar, dataclasses.replace(H200, gpu="NVIDIA A100", compute_capability="8.0"), "b")
    with pytest.raises(EngineError, match="--hardware-compat ampere\\+"):
        check_compatible(sidecar, dataclasses.replace(H200, gpu="Tesla T4", compute_capability="7.5"), "b")


def test_rebuild_command_repeats_dla_flags() -> None:
    with pytest.raises(EngineError) as info:
        check_compatible(make_sidecar(ORIN, dla_core=1, gpu_fallback=True), H200, "b")
    assert "--dla-core 1 --gpu-fallback" in str(info.value)


def test_short_version_shows_the_parts_that_differ() -> None:
    assert short_version("10.3.0.30", "10.8.0.43") == "10.3"
    assert short_version("10.3.0.30", "10.3.1.2") == "10.3.0"
    assert short_version("10.3.0.30", "10.3.0.30") == "10.3.0.30"


def test_read_l4t_release(tmp_path: Path) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x\n"
    )
    assert read_l4t_release(release) == "R36.4.3"
    assert read_l4t_release(tmp_path / "absent") is None


# ---- plan and selection ---------------------------------------------------------------------
class _FakeBundle:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.engines: dict[str, dict[str, dict[str, object]]] = {}


def _install(root: Path, sidecar: EngineSidecar, payload: bytes = b"plan-bytes") -> str:
    (root / sidecar.plan).parent.mkdir(parents=True, exist_ok=True)
    (root / sidecar.plan).write_bytes(payload)
    sidecar_file = sidecar.plan.replace(".plan", ".json")
    sidecar.write(root / sidecar_file)
    return sidecar_file


def test_read_plan_verifies_sha256(tmp_path: Path) -> None:
    sidecar = make_sidecar()
    _install(tmp_path, sidecar)
    assert read_plan(tmp_path, sidecar) == b"plan-bytes"
    (tmp_path / sidecar.plan).write_bytes(b"tampered")
    with pytest.raises(EngineError, match="engine file altered"):
        read_plan(tmp_path, sidecar)


def test_select_engine_without_engines_says_how_to_build(tmp_path: Path) -> None:
    bundle = _FakeBundle(tmp_path)
    with pytest.raises(EngineError, match=f"mmedge build {tmp_path} --precision fp16 --components text"):
        select_engine(bundle, "text", "fp16", ORIN)  # type: ignore[arg-type]


def test_select_engine_picks_the_compatible_one(tmp_path: Path) -> None:
    bundle = _FakeBundle(tmp_path)
    for env in (ORIN, H200):
        sidecar = make_sidecar(env)
        record_engine(bundle, sidecar, _install(tmp_path, sidecar))  # type: ignore[arg-type]
    assert len(bundle.engines["text"]["fp16"]) == 2
    assert select_engine(bundle, "text", "fp16", H200).environment == H200  # type: ignore[arg-type]
    assert select_engine(bundle, "text", "fp16", ORIN).environment == ORIN  # type: ignore[arg-type]
    other = dataclasses.replace(H200, tensorrt="10.9.0.1")
    with pytest.raises(EngineError, match=r"this is TensorRT 10\.9 on NVIDIA H200"):
        select_engine(bundle, "text", "fp16", other)  # type: ignore[arg-type]


# ---- JSON format (byte-compatible with sidecars on disk) ---------------------------------------
def test_engine_key_is_pinned() -> None:
    """The key hashes the JSON of the environment and flags: changing their format orphans every cache."""
    assert engine_key(fields(ORIN)) == "c89a8e5556fa161642cfb021caee6c7acb67350f30f5922b56abb48c9f939d91"
    assert engine_key(fields(H200)) == "cd3c5429f20e01cbe7d472731363ef591675e1ab0cd76e16e81a994f89015048"


def test_sidecar_json_keys_and_order() -> None:
    data = make_sidecar().to_json()
    assert list(data) == [
        "key", "fields", "plan", "plan_sha256", "plan_bytes", "built_at", "build_seconds", "builder_log", "io",
        "schema",
    ]  # fmt: skip
    assert list(data["fields"]) == ["schema", "environment", "component", "precision", "onnx_sha256", "profiles",
                                    "flags"]
    assert data["fields"]["environment"] == dataclasses.asdict(ORIN)  # every field, None included
    assert list(data["fields"]["flags"]) == [f.name for f in dataclasses.fields(BuildFlags)]
    assert EngineSidecar.from_json(json.loads(json.dumps(data))) == make_sidecar()


def test_flags_and_environment_of_older_sidecars_take_defaults() -> None:
    assert BuildFlags.from_json({}) == BuildFlags()
    assert BuildFlags.from_json({"workspace_gib": 2, "dla_core": 1}) == BuildFlags(workspace_gib=2.0, dla_core=1)
    old = {"tensorrt": "10.0.1.6", "gpu": "Orin", "compute_capability": "8.7", "cuda_driver": "12.2",
           "l4t": "R36.3.0", "cuda_runtime": "12.2"}  # schema 1: binding runtime, no device facts
    env = TrtEnvironment.from_json(old)
    assert env.l4t == "R36.3.0" and env.sm_count is None and env.board is None and env.tensorrt_cuda is None
    with pytest.raises(EngineError, match=r"environment\.gpu: required key is missing"):
        TrtEnvironment.from_json({"tensorrt": "10.3", "compute_capability": "8.7", "cuda_driver": "12.6"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"plan_bytes": "ten"}, r"plan_bytes: expected int"),
        ({"surprise": 1}, r"unknown key\(s\) \['surprise'\]"),
        ({"key": None}, r"key: expected str"),
        ({"fields": {"schema": 2}}, r"required key\(s\) \['component', 'environment', 'precision'\]"),
        ({"fields": {**fields(), "environment": {"gpu": "Orin"}}}, r"environment\.tensorrt: required key"),
        ({"fields": {**fields(), "flags": {"dla_core": "zero"}}}, r"flags\.dla_core: expected int"),
    ],
)
def test_malformed_sidecar_is_engine_error_with_rebuild_hint(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**make_sidecar().to_json(), **change}))
    with pytest.raises(EngineError, match=rf"bad\.json is unreadable \(EngineError: .*{message}.*rebuild the engine"):
        EngineSidecar.read(path)


def test_cache_uses_the_shared_layout_and_precision_names() -> None:
    from mmedge.runtime.backends.tensorrt import cache

    assert not hasattr(cache, "ENGINE_DIR") and not hasattr(cache, "TRT_INT8")
    assert not hasattr(cache, "engine_precision")


def test_select_engine_maps_int8_to_the_tensorrt_flavour(tmp_path: Path) -> None:
    bundle = _FakeBundle(tmp_path)
    with pytest.raises(EngineError, match="no int8-trt TensorRT engine for 'text'"):
        select_engine(bundle, "text", "int8", ORIN)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown precision 'int4'"):
        select_engine(bundle, "text", "int4", ORIN)  # type: ignore[arg-type]


# ---- what tells devices apart (cache key schema 2) --------------------------------------------
def test_agx_orin_engine_is_neither_reused_nor_loaded_on_an_orin_nano() -> None:
    assert engine_key(fields(ORIN)) != engine_key(fields(ORIN_NANO))
    with pytest.raises(EngineError, match=r"Orin Nano Developer Kit.*rebuild with"):
        check_compatible(make_sidecar(ORIN), ORIN_NANO, "b")


@pytest.mark.parametrize("change", [{"sm_count": 14}, {"board": "NVIDIA Jetson AGX Orin 32GB"}, {"dla_cores": 1}])
def test_each_device_fact_alone_is_a_mismatch(change: dict[str, Any]) -> None:
    with pytest.raises(EngineError, match="rebuild with"):
        check_compatible(make_sidecar(ORIN), dataclasses.replace(ORIN, **change), "b")


def test_tensorrt_cuda_major_is_keyed_and_checked_but_not_the_binding_runtime() -> None:
    cu13 = dataclasses.replace(H200, tensorrt_cuda="13")
    assert engine_key(fields(H200)) != engine_key(fields(cu13))
    with pytest.raises(EngineError, match=r"built for TensorRT [.\d]+ \(cu12\).*this is TensorRT [.\d]+ \(cu13\)"):
        check_compatible(make_sidecar(H200), cu13, "b")
    assert "cuda_runtime" not in fields(H200)["environment"]
    assert fields(H200)["environment"]["cuda_driver"] == "12.8"


def test_schema_1_sidecar_reads_never_matches_and_asks_for_a_rebuild(tmp_path: Path) -> None:
    old = make_sidecar(ORIN).to_json()
    old["schema"] = 1
    old["fields"]["schema"] = 1
    env = old["fields"]["environment"]
    for name in ("sm_count", "memory_mib", "board", "dla_cores", "tensorrt_cuda"):
        env.pop(name)
    env["cuda_runtime"] = "12.6"
    old["key"] = engine_key(old["fields"])
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    sidecar = EngineSidecar.read(path)  # must not crash
    assert sidecar.schema == 1 and sidecar.environment.sm_count is None
    assert sidecar.key != engine_key(fields(ORIN)) and KEY_SCHEMA == 2
    with pytest.raises(EngineError, match=r"cache schema 1 sidecar \(now 2\).*rebuild with: mmedge build b"):
        check_compatible(sidecar, ORIN, "b")
    del old["schema"]  # sidecars older than the field itself
    path.write_text(json.dumps(old))
    assert EngineSidecar.read(path).schema == 1


def test_read_board_model_strips_the_device_tree_nul(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\0")
    assert read_board_model(model) == "NVIDIA Jetson Orin Nano Developer Kit"
    assert read_board_model(tmp_path / "absent") is None


def test_tensorrt_cuda_major_comes_from_the_pip_distribution() -> None:
    assert tensorrt_cuda_major({"tensorrt": ["tensorrt_cu12_bindings", "tensorrt-stubs"]}) == "12"
    assert tensorrt_cuda_major({"tensorrt": ["tensorrt-cu13-bindings"]}) == "13"
    assert tensorrt_cuda_major({"tensorrt": ["tensorrt-stubs"]}) is None  # JetPack apt bindings, stubs
    assert tensorrt_cuda_major({"tensorrt": ["tensorrt-cu12", "tensorrt-cu13"]}) is None  # ambiguous
    assert tensorrt_cuda_major({}) is None


def test_hardware_compatible_engines_are_refused_on_jetson() -> None:
    for level in ("ampere+", "same-cc"):
        with pytest.raises(InputError, match=re.escape(f"--hardware-compat {level} is not supported on Jetson")):
            check_build_target(ORIN, hardware_compat=level)
    check_build_target(H200, hardware_compat="ampere+")
    check_build_target(ORIN)


def test_dla_core_beyond_the_device_is_refused_before_building() -> None:
    check_build_target(ORIN, dla_core=1)
    with pytest.raises(InputError, match=r"--dla-core 2: NVIDIA Jetson AGX Orin Developer Kit has 2 DLA core"):
        check_build_target(ORIN, dla_core=2)
    with pytest.raises(InputError, match="drop --dla-core"):
        check_build_target(ORIN_NANO, dla_core=0)
