"""Export one component (an encoder or the fusion head) to ONNX, atomically, and check it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from mmedge.errors import ExportError
from mmedge.io import atomic_path
from mmedge.specs import TensorSpec

log = logging.getLogger(__name__)

# TorchScript exporter at opset 17: far faster than the dynamo exporter on these graphs, no
# external-data files, and opset 17 is accepted by every TensorRT 10.x
# (JetPack 6) and by ONNX Runtime's quantization tools.
OPSET = 17


def dynamic_axes(specs: list[TensorSpec]) -> dict[str, dict[int, str]]:
    """{tensor name: {axis index: axis name}} for every named (dynamic) dimension."""
    return {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in specs}


def export_module(module: torch.nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec],
                  example: tuple[torch.Tensor, ...], path: Path, opset: int = OPSET) -> Path:
    """Export `module(*example)` to `path` (atomic), then run onnx.checker with full_check."""
    import onnx

    module.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
        try:
            torch.onnx.export(
                module, example, str(tmp),
                input_names=[s.name for s in inputs], output_names=[s.name for s in outputs],
                dynamic_axes=dynamic_axes(inputs + outputs), opset_version=opset,
                do_constant_folding=True, dynamo=False,
            )
            model = onnx.load(str(tmp))
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # exporter/checker raise many types; one clear message
            raise ExportError(f"exporting {path.name} failed: {type(exc).__name__}: {exc}") from exc
    log.info("exported %s (%d bytes)", path, path.stat().st_size)
    return path
