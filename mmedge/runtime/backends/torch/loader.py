"""Loader of the "torch" backend: modules rebuilt from the torch weights stored in the bundle."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmedge.bundle import TORCH_DIR
from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.torch.runner import TorchRunner
from mmedge.runtime.options import RunnerOptions
from mmedge.specs import HEAD

if TYPE_CHECKING:
    from mmedge.bundle import Bundle
    from mmedge.train.checkpoint import LoadedRun


@dataclass(frozen=True)
class TorchOptions:
    """Settings of the torch backend."""

    torch_device: str = "cpu"  # a torch device string ("cpu", "cuda:0")
    compile: bool = False  # torch.compile the module


@functools.lru_cache(maxsize=4)
def _load_reference(torch_dir: str, weights_sha256: str | None) -> LoadedRun:  # the hash keys the cache
    from mmedge.train.checkpoint import load_run

    return load_run(torch_dir)


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> TorchRunner:
    """PyTorch reference runner of `component` (fp32 only: precision lives in the ONNX graphs)."""
    settings = options.section("torch", TorchOptions, uses=("threads",))
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "the torch backend", "'mmedge[train]'") from exc
    if precision != "fp32":
        raise BackendError(f"the torch backend is the fp32 reference; {precision} runs on onnxruntime or tensorrt")
    from mmedge.train.checkpoint import CHECKPOINT, RUN_META

    if not (bundle.root / TORCH_DIR).is_dir():
        raise BackendError(f"bundle {bundle.root} has no torch reference ({TORCH_DIR}/); re-export it")
    weights = f"{TORCH_DIR}/{CHECKPOINT}"
    torch_dir = bundle.verified_path(weights).parent  # confined and hashed once per Bundle, like run.json
    bundle.verified_path(f"{TORCH_DIR}/{RUN_META}")
    if options.threads:
        torch.set_num_threads(options.threads)
    run = _load_reference(str(torch_dir.resolve()), bundle.recorded_sha256(weights))
    comp = bundle.components[component]
    module = run.model.head if component == HEAD else run.model.encoder(component)
    return TorchRunner(module, comp.inputs, comp.outputs, component, settings.torch_device, settings.compile)


BACKEND = Backend("torch", make_runner, fp32_only=True)
