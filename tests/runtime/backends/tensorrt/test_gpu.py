"""TensorRT engines on a real GPU: build, run, compare with ONNX Runtime CPU, CUDA graphs,
concurrent vs sequential pipeline, cache reuse, mismatch errors. Skips without TensorRT/GPU."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import gpu_utils
import numpy as np
import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BackendError, EngineError
from mmedge.runtime.backends import make_runner as make_backend_runner
from mmedge.runtime.backends.tensorrt.build import BuildOptions, build_bundle
from mmedge.runtime.backends.tensorrt.cache import EngineSidecar
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, probe_environment
from mmedge.runtime.backends.tensorrt.executor import run_concurrent, run_sequential
from mmedge.runtime.backends.tensorrt.runner import TensorRTRunner
from mmedge.runtime.options import RunnerOptions


def make_runner(bundle: Bundle, component: str, precision: str, **settings: object) -> TensorRTRunner:
    """An inactive TensorRT runner through the backend registry (settings: the tensorrt options)."""
    runner = make_backend_runner(bundle, component, precision, RunnerOptions.make(**settings), backend="tensorrt")
    assert isinstance(runner, TensorRTRunner)
    return runner

pytestmark = [pytest.mark.gpu, pytest.mark.trt, gpu_utils.requires_gpu, gpu_utils.requires_trt]
ATOL = {"fp32": 1e-3, "fp16": 2e-2}
ENCODERS = ("text", "image", "audio")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = gpu_utils.make_tiny_bundle(tmp_path_factory.mktemp("trt") / "bundle")
    for precision in ("fp32", "fp16"):
        report = build_bundle(root, BuildOptions(precision=precision, workspace_gib=1.0))
        assert [r.cached for r in report.results] == [False] * 4
    return root


@pytest.fixture()
def runners(built: Path) -> Iterator[dict[str, TensorRTRunner]]:
    bundle = Bundle.load(built)
    opened = {c: make_runner(bundle, c, "fp16") for c in (*ENCODERS, "fusion_head")}
    for runner in opened.values():
        runner.activate()
    yield opened
    for runner in opened.values():
        runner.deactivate()


def test_build_writes_pristine_plans_sidecars_and_logs(built: Path) -> None:
    engines = json.loads((built / "bundle.json").read_text())["engines"]
    assert set(engines) == {*ENCODERS, "fusion_head"}
    for component, by_precision in engines.items():
        for precision, records in by_precision.items():
            (record,) = records.values()
            sidecar = EngineSidecar.read(built / record["sidecar"])
            assert sidecar.component == component and sidecar.precision == precision
            assert (built / sidecar.plan).stat().st_size == sidecar.plan_bytes
            assert sidecar.builder_log and (built / sidecar.builder_log).is_file()


def test_second_build_is_a_cache_hit(built: Path) -> None:
    report = build_bundle(built, BuildOptions(precision="fp16"))
    assert all(r.cached for r in report.results)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 3])
def test_engine_matches_onnxruntime_cpu(built: Path, precision: str, batch: int) -> None:
    bundle = Bundle.load(built)
    feeds = gpu_utils.make_feeds(batch=batch, seq=5)
    for component in ENCODERS:
        with make_runner(bundle, component, precision) as runner:
            got = runner.infer(feeds[component])
            assert runner.last_timings is not None and runner.last_timings.compute_ms > 0
        want = gpu_utils.ort_cpu(built, component, precision, feeds[component])
        for name, value in want.items():
            assert got[name].shape == value.shape
            np.testing.assert_allclose(got[name], value, atol=ATOL[precision], rtol=ATOL[precision])


def test_cuda_graph_path_equals_plain_path(built: Path) -> None:
    bundle = Bundle.load(built)
    feed = gpu_utils.make_feeds(batch=2)["image"]
    with (
        make_runner(bundle, "image", "fp32") as plain,
        make_runner(bundle, "image", "fp32", cuda_graph=True) as graph,
    ):
        want = plain.infer(feed)["image_embedding"]
        for _ in range(3):  # capture, then replays
            np.testing.assert_array_equal(graph.infer(feed)["image_embedding"], want)
        other = gpu_utils.make_feeds(batch=4, seed=7)["image"]  # new shape: recapture
        np.testing.assert_array_equal(
            graph.infer(other)["image_embedding"], plain.infer(other)["image_embedding"]
        )


def test_concurrent_equals_sequential_and_cpu(built: Path, runners: dict[str, TensorRTRunner]) -> None:
    feeds = gpu_utils.make_feeds(batch=2)
    concurrent = run_concurrent(runners, feeds, fetch_embeddings=True)
    sequential = run_sequential(runners, feeds, fetch_embeddings=True)
    logits = concurrent.outputs["fusion_head"]["logits"]
    np.testing.assert_allclose(logits, sequential.outputs["fusion_head"]["logits"], atol=1e-6)
    np.testing.assert_allclose(logits, gpu_utils.ort_cpu_pipeline(built, "fp16", feeds), atol=5e-2, rtol=5e-2)
    assert concurrent.gpu_span_ms > 0 and set(concurrent.stages) == {*ENCODERS, "fusion_head"}


def test_missing_modality_uses_host_zeros(runners: dict[str, TensorRTRunner]) -> None:
    feeds = gpu_utils.make_feeds(batch=2)
    del feeds["audio"]
    feeds["fusion_head"]["audio_embedding"] = np.zeros((2, gpu_utils.D), np.float32)
    feeds["fusion_head"]["present"][:, 2] = 0
    result = run_concurrent(runners, feeds)
    assert result.encoders == ["text", "image"] and result.outputs["fusion_head"]["logits"].shape == (2, 3)


def test_shape_outside_profile_is_a_clear_error(built: Path) -> None:
    with (
        make_runner(Bundle.load(built), "audio", "fp32") as runner,
        pytest.raises(BackendError, match="profile"),
    ):
        runner.infer(gpu_utils.make_feeds(batch=gpu_utils.BATCH[2] + 1)["audio"])


def test_mismatched_sidecar_is_an_engine_error(built: Path) -> None:
    bundle = Bundle.load(built)
    env = probe_environment()
    other = dataclasses.replace(env, tensorrt="9.9.9.9", gpu="Some Other GPU", compute_capability="7.2")
    with pytest.raises(EngineError, match="rebuild with: mmedge build"):
        make_runner(bundle, "text", "fp32", env=other)


def test_tampered_plan_is_refused_before_deserializing(built: Path) -> None:
    bundle = Bundle.load(built)
    runner = make_runner(bundle, "fusion_head", "fp32")
    plan = built / runner.sidecar.plan
    original = plan.read_bytes()
    try:
        plan.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(EngineError, match="engine file altered"):
            runner.activate()
    finally:
        plan.write_bytes(original)


def test_environment_probe(built: Path) -> None:
    env = probe_environment()
    assert isinstance(env, TrtEnvironment) and env.tensorrt.startswith("1") and "." in env.compute_capability
