"""PyTorch eager runner (the fp32 reference), built from the torch weights stored in the bundle."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.runner import check_feed
from mmedge.specs import HEAD, TensorSpec

if TYPE_CHECKING:
    import torch

    from mmedge.bundle import Bundle
    from mmedge.train.checkpoint import LoadedRun


@functools.lru_cache(maxsize=4)
def _load_reference(torch_dir: str) -> LoadedRun:
    from mmedge.train.checkpoint import load_run

    return load_run(torch_dir)


class TorchRunner:
    """Runs one component's nn.Module in eval mode under inference_mode."""

    def __init__(self, module: torch.nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 name: str, device: str = "cpu", compile: bool = False) -> None:
        import torch

        self.inputs, self.outputs, self.name = inputs, outputs, name
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self._call = torch.compile(self.module) if compile else self.module

    def __enter__(self) -> TorchRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the module on numpy inputs and return numpy outputs."""
        import torch

        check_feed(self.inputs, feed, self.name)
        with torch.inference_mode():
            args = [torch.from_numpy(feed[s.name]).to(self.device) for s in self.inputs]
            out = self._call(*args)
        return {self.outputs[0].name: out.float().cpu().numpy()}


def make_runner(bundle: Bundle, component: str, precision: str, threads: int | None = None,
                device: str = "cpu", compile: bool = False, **options: Any) -> TorchRunner:
    """PyTorch reference runner of `component` (fp32 only: precision lives in the ONNX graphs)."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "the torch backend", "'mmedge[train]'") from exc
    if options:
        raise BackendError(f"torch backend: unknown option(s) {sorted(options)}")
    if precision != "fp32":
        raise BackendError(f"the torch backend is the fp32 reference; {precision} runs on onnxruntime or tensorrt")
    from mmedge.exporters.export_run import TORCH_DIR

    torch_dir = Path(bundle.root) / TORCH_DIR
    if not torch_dir.is_dir():
        raise BackendError(f"bundle {bundle.root} has no torch reference ({TORCH_DIR}/); re-export it")
    if threads:
        torch.set_num_threads(threads)
    run = _load_reference(str(torch_dir.resolve()))
    comp = bundle.components[component]
    module = run.model.head if component == HEAD else run.model.encoder(component)
    return TorchRunner(module, comp.inputs, comp.outputs, component, device=device, compile=compile)
