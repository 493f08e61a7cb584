"""The runner contract: lifecycle, input checks in the base, and one options value every backend accepts."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BackendError
from mmedge.runtime.backends import available_backends, make_runner
from mmedge.runtime.options import RunnerOptions
from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec


class Echo(Runner):
    """A minimal backend: doubles its input; counts activations."""

    def __init__(self) -> None:
        super().__init__("echo", [TensorSpec("x", "float32", ("batch", 3), {"batch": (1, 1, 4)})],
                         [TensorSpec("y", "float32", ("batch", 3))])
        self.activations = self.deactivations = 0

    def _activate(self) -> None:
        self.activations += 1

    def _deactivate(self) -> None:
        self.deactivations += 1

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {"y": np.asarray(feed["x"]) * 2}


def test_lifecycle_is_owned_by_the_base() -> None:
    runner = Echo()
    with pytest.raises(BackendError, match="echo: infer\\(\\) on an inactive runner"):
        runner.infer({"x": np.ones((1, 3), np.float32)})
    with runner:
        runner.activate()  # idempotent
        np.testing.assert_array_equal(runner.infer({"x": np.ones((2, 3), np.float32)})["y"], 2 * np.ones((2, 3)))
    assert (runner.activations, runner.deactivations, runner.is_active) == (1, 1, False)
    runner.deactivate()  # idempotent
    assert runner.deactivations == 1


def test_garbage_collected_while_active_warns() -> None:
    runner = Echo()
    runner.activate()
    with pytest.warns(ResourceWarning, match="garbage-collected while active"):
        del runner
        gc.collect()


@pytest.mark.parametrize(("feed", "message"), [
    ({"z": np.ones((1, 3), np.float32)}, r"inputs \['z'\] do not match the graph's \['x'\]"),
    ({"x": np.ones((1, 3), np.float64)}, "expects float32 rank 2, got float64"),
    ({"x": np.ones((3,), np.float32)}, "expects float32 rank 2"),
    ({"x": np.ones((1, 4), np.float32)}, "dimension 1 must be 3, got 4"),
])
def test_bad_feeds_are_one_clear_error(feed: dict[str, np.ndarray], message: str) -> None:
    with Echo() as runner, pytest.raises(BackendError, match=message):
        runner.infer(feed)


def test_ranges_are_checked_when_the_backend_bounds_them() -> None:
    with Echo() as runner:
        runner.infer({"x": np.ones((9, 3), np.float32)})  # no limits: a dynamic graph takes any batch
        runner.limits = {"x": ((1, 3), (4, 3))}
        assert runner.max_batch == 4
        with pytest.raises(BackendError, match=r"shape \(9, 3\) is outside the supported range \(1, 3\)..\(4, 3\)"):
            runner.infer({"x": np.ones((9, 3), np.float32)})


def test_options_split_common_and_backend_settings() -> None:
    opts = RunnerOptions.make(threads=2, device_id=1, cuda_graph=True)
    assert (opts.threads, opts.device, opts.backend) == (2, 1, {"cuda_graph": True})
    assert RunnerOptions.make(threads=None).threads is None
    for bad in ({"threads": 0}, {"device": -1}):
        with pytest.raises(BackendError):
            RunnerOptions.make(**bad)


CPU_BACKENDS = ("onnxruntime", "torch")


@pytest.mark.parametrize("backend", available_backends())
def test_every_backend_accepts_the_common_options(backend: str, tiny_bundle_pristine: Path,
                                                  request: pytest.FixtureRequest) -> None:
    bundle = Bundle.load(tiny_bundle_pristine)
    common = RunnerOptions(threads=1, device=0)
    if backend == "tensorrt":
        request.getfixturevalue("standin")
        from trt_helpers import plant_plans  # the stand-in engines, as `mmedge build` would leave them

        bundle = Bundle.load(_with_engines(tiny_bundle_pristine, request.getfixturevalue("tmp_path"), plant_plans))
    try:
        runner = make_runner(bundle, "fusion_head", "fp32", common, backend=backend)
    except BackendError as exc:  # GPU providers absent on this machine: refused for that, not for the options
        assert backend not in (*CPU_BACKENDS, "tensorrt") and "option" not in str(exc), exc
        assert "ExecutionProvider" in str(exc)
        return
    with runner:
        d = int(runner.inputs[0].shape[1])
        feed = {s.name: np.zeros((1, d if s.name != "present" else 3), np.float32) for s in runner.inputs}
        assert runner.infer(feed)["logits"].shape == (1, len(bundle.labels))


@pytest.mark.parametrize("backend", available_backends())
def test_every_backend_refuses_unknown_options(backend: str, tiny_bundle_pristine: Path) -> None:
    bundle = Bundle.load(tiny_bundle_pristine)
    with pytest.raises(BackendError, match=rf"{backend} backend: unknown option\(s\) \['warp_speed'\]"):
        make_runner(bundle, "fusion_head", "fp32", RunnerOptions.make(warp_speed=9), backend=backend)


def _with_engines(pristine: Path, tmp: Path, plant: Any) -> Path:
    import shutil

    from mmedge.runtime.backends.tensorrt.build import BuildOptions, build_bundle

    root = tmp / "bundle"
    shutil.copytree(pristine, root)
    plant(root, "fp32")
    build_bundle(root, BuildOptions(precision="fp32"))
    return root
