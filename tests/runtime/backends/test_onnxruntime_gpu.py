"""ONNX Runtime GPU backends: a clear error when the provider is absent (CPU machines), node placement
read from ONNX Runtime's own profile (shape nodes may run on the CPU, compute nodes may not), and a real
comparison with ONNX Runtime CPU where the provider and a GPU exist."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, ClassVar

import gpu_utils
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mmedge.bundle import Bundle
from mmedge.errors import BackendError
from mmedge.runtime.backends.onnxruntime_gpu import runner as ort_gpu
from mmedge.runtime.backends.onnxruntime_gpu.loader import make_cuda_runner, make_trt_runner
from mmedge.runtime.backends.onnxruntime_gpu.runner import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    NodePlacement,
    OrtGpuRunner,
    gpu_session_options,
    placement_check,
    probe_feed,
    profile_placements,
    trt_provider_options,
)
from mmedge.runtime.options import RunnerOptions
from mmedge.specs import TensorSpec

FACTORIES = {CUDA_EP: make_cuda_runner, TRT_EP: make_trt_runner}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(gpu_utils.make_tiny_bundle(tmp_path_factory.mktemp("ort_gpu") / "b"))


@pytest.mark.parametrize("provider", [CUDA_EP, TRT_EP])
def test_absent_provider_raises_with_install_hint(provider: str, bundle: Bundle) -> None:
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is available here")
    with pytest.raises(BackendError, match=f"{provider} is not available here.*pip install onnxruntime-gpu"):
        FACTORIES[provider](bundle, "fusion_head", "fp32", RunnerOptions())


def test_session_options_no_longer_forbid_every_cpu_node(tmp_path: Path) -> None:
    opts = gpu_session_options()
    with pytest.raises(Exception):  # noqa: B017 - ORT raises its own type for an absent entry
        opts.get_session_config_entry("session.disable_cpu_ep_fallback")
    assert not opts.enable_profiling
    profiled = gpu_session_options(profile_prefix=tmp_path / "p")
    assert profiled.enable_profiling and profiled.profile_file_prefix == str(tmp_path / "p")


def test_trt_provider_options_follow_the_onnx_precision(tmp_path: Path) -> None:
    assert trt_provider_options("fp32", tmp_path)["trt_fp16_enable"] is False
    assert trt_provider_options("fp16", tmp_path)["trt_fp16_enable"] is True
    assert trt_provider_options("int8", tmp_path)["trt_int8_enable"] is True
    assert trt_provider_options("fp16", tmp_path)["trt_engine_cache_path"] == str(tmp_path)


def test_unknown_option_is_rejected(bundle: Bundle) -> None:
    with pytest.raises(BackendError, match="unknown option"):
        make_cuda_runner(bundle, "fusion_head", "fp32", RunnerOptions.make(turbo=True))


# ---- node placement --------------------------------------------------------------------------
SHAPE = NodePlacement("Shape_0", "Shape", CPU_EP, (("int64", (2,)),))
GATHER = NodePlacement("Gather_1", "Gather", CPU_EP, (("int64", ()),))
CONCAT = NodePlacement("Concat_2", "Concat", CPU_EP, (("int64", (2,)),))
MATMUL_GPU = NodePlacement("MatMul_3", "MatMul", CUDA_EP, (("float", (2, 16)),))


def test_shape_subgraph_on_the_cpu_is_allowed() -> None:
    placement_check([SHAPE, GATHER, CONCAT, MATMUL_GPU], CUDA_EP, "text.onnx")


@pytest.mark.parametrize(
    "node",
    [
        NodePlacement("Gemm_9", "Gemm", CPU_EP, (("float", (2, 16)),)),  # compute op
        NodePlacement("Add_9", "Add", CPU_EP, (("float", (2, 16)),)),  # shape op, but float data
        NodePlacement("Gather_9", "Gather", CPU_EP, (("int64", (8, 128)),)),  # int64, but not a shape
    ],
)
def test_compute_on_the_cpu_is_named_with_where_it_landed(node: NodePlacement) -> None:
    with pytest.raises(BackendError) as info:
        placement_check([SHAPE, node, MATMUL_GPU], CUDA_EP, "text.onnx")
    message = str(info.value)
    assert f"{node.name} ({node.op}) on {CPU_EP}" in message and "off CUDAExecutionProvider" in message
    assert "Shape_0" not in message and "\n" not in message


def test_no_placement_information_is_not_taken_as_all_gpu() -> None:
    with pytest.raises(BackendError, match="no node placement"):
        placement_check([], CUDA_EP, "text.onnx")


def _shape_model(path: Path) -> list[TensorSpec]:
    """x[batch, 4] → Relu, reshaped through a Shape → Gather → Unsqueeze → Concat sub-graph."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0, name="gather"),
        helper.make_node("Unsqueeze", ["b", "axes"], ["bu"], name="unsqueeze"),
        helper.make_node("Concat", ["bu", "minus_one"], ["target"], axis=0, name="concat"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "target"], ["y"], name="reshape"),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [], [0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
        helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return [TensorSpec("x", "float32", ("batch", 4), {"batch": (1, 2, 8)})]


def test_placements_are_read_from_a_real_onnxruntime_profile(tmp_path: Path) -> None:
    inputs = _shape_model(tmp_path / "m.onnx")
    feed = probe_feed(inputs)
    assert feed["x"].shape == (2, 4) and feed["x"].dtype == np.float32
    session = ort.InferenceSession(
        str(tmp_path / "m.onnx"), gpu_session_options(profile_prefix=tmp_path / "prof"), providers=[CPU_EP]
    )
    placements = profile_placements(session, feed)
    by_op = {p.op: p for p in placements}
    assert by_op["Relu"].provider == CPU_EP and not by_op["Relu"].is_shape_computation
    assert by_op["Relu"].outputs == (("float", (2, 4)),)
    assert all(p.is_shape_computation for p in placements if p.op in ("Shape", "Gather", "Concat"))
    assert not list(tmp_path.glob("prof*.json"))  # the profile file is removed


class _CpuSessionAsCuda:
    """A real CPU session that reports itself as a CUDA session: what the CUDA EP does with a model
    whose compute nodes it cannot take (they land on the CPU EP listed after it)."""

    providers_seen: ClassVar[list[Any]] = []

    def __init__(self, path: str, sess_options: Any, providers: list[Any]) -> None:
        type(self).providers_seen = providers
        self._session = ort.InferenceSession(path, sess_options, providers=[CPU_EP])

    def get_providers(self) -> list[str]:
        return [CUDA_EP, CPU_EP]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _fake_ort(monkeypatch: pytest.MonkeyPatch, session_class: type) -> None:
    fake = types.SimpleNamespace(
        get_available_providers=lambda: [CUDA_EP, CPU_EP],
        SessionOptions=ort.SessionOptions,
        GraphOptimizationLevel=ort.GraphOptimizationLevel,
        InferenceSession=session_class,
    )
    monkeypatch.setattr(ort_gpu, "_ort", lambda: fake)


def test_activation_adds_the_cpu_ep_and_rejects_compute_nodes_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _shape_model(tmp_path / "m.onnx")
    _fake_ort(monkeypatch, _CpuSessionAsCuda)
    runner = OrtGpuRunner(tmp_path / "m.onnx", inputs, [TensorSpec("y", "float32", ("batch", 4))], CUDA_EP)
    with pytest.raises(BackendError, match=r"compute node\(s\) of m\.onnx off CUDAExecutionProvider: .*relu \(Relu\)"):
        runner.activate()
    assert not runner.is_active
    provider, cpu = _CpuSessionAsCuda.providers_seen
    assert provider == (CUDA_EP, {"device_id": 0}) and cpu == CPU_EP


class _PlacedSession:
    """A session whose profile puts the shape sub-graph on the CPU and the compute on CUDA."""

    def __init__(self, path: str, sess_options: Any, providers: list[Any]) -> None:
        self.prefix = Path(sess_options.profile_file_prefix)
        self._graph = ort.InferenceSession(path, providers=[CPU_EP])  # the real graph's I/O metadata

    def get_providers(self) -> list[str]:
        return [CUDA_EP, CPU_EP]

    def get_inputs(self) -> Any:
        return self._graph.get_inputs()

    def get_outputs(self) -> Any:
        return self._graph.get_outputs()

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [feed["x"]]

    def end_profiling(self) -> str:
        def event(name: str, op: str, provider: str, dtype: str, shape: list[int]) -> dict[str, Any]:
            args = {"op_name": op, "provider": provider, "output_type_shape": [{dtype: shape}]}
            return {"cat": "Node", "name": f"{name}_kernel_time", "args": args}

        events = [
            {"cat": "Session", "name": "session_initialization", "args": {}},
            event("shape", "Shape", CPU_EP, "int64", [2]),
            event("concat", "Concat", CPU_EP, "int64", [2]),
            event("relu", "Relu", CUDA_EP, "float", [2, 4]),
        ]
        path = self.prefix.with_name(self.prefix.name + "_x.json")
        path.write_text(json.dumps(events))
        return str(path)


def test_activation_accepts_shape_nodes_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _shape_model(tmp_path / "m.onnx")
    _fake_ort(monkeypatch, _PlacedSession)
    runner = OrtGpuRunner(tmp_path / "m.onnx", inputs, [TensorSpec("y", "float32", ("batch", 4))], CUDA_EP)
    runner.activate()
    assert runner.is_active
    runner.deactivate()


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("provider", "precision", "atol"),
    [(CUDA_EP, "fp32", 1e-3), (CUDA_EP, "fp16", 2e-2), (TRT_EP, "fp32", 1e-3), (TRT_EP, "fp16", 2e-2)],
)
def test_gpu_provider_matches_cpu(provider: str, precision: str, atol: float, bundle: Bundle) -> None:
    reason = gpu_utils.ort_provider_skip_reason(provider)
    if reason:
        pytest.skip(reason)
    feeds = gpu_utils.make_feeds()
    for component in ("text", "image", "audio"):
        with FACTORIES[provider](bundle, component, precision, RunnerOptions()) as runner:
            got = runner.infer(feeds[component])
        want = gpu_utils.ort_cpu(bundle.root, component, precision, feeds[component])
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, atol=atol, rtol=atol)


def test_gpu_runner_checks_the_graph_against_bundle_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmedge.errors import BundleError

    inputs = _shape_model(tmp_path / "m.onnx")
    _fake_ort(monkeypatch, _PlacedSession)
    wrong = [TensorSpec("y", "float32", ("batch", 5))]  # bundle.json says 5 wide, the graph gives 4
    runner = OrtGpuRunner(tmp_path / "m.onnx", inputs, wrong, CUDA_EP, component="image")
    with pytest.raises(BundleError, match="image"):
        runner.activate()
    assert not runner.is_active
