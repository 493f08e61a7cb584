"""OpenVINO runner on the CPU plugin: compiles ONNX bytes on activate(); one infer request per thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec

PIP_SPEC = "'mmedge[openvino]'"


def import_openvino() -> Any:
    """The openvino module, or MissingDependencyError naming the extra."""
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError("openvino", "the openvino backend", PIP_SPEC) from exc
    return openvino


def compile_config(threads: int | None, hint: str) -> dict[str, Any]:
    """CPU plugin properties: the performance hint, f32 inference (precision lives in the graph), threads."""
    # Without an explicit f32 hint the plugin may run fp32 graphs in bf16 on CPUs that have it: a silent
    # precision change; the bundle's fp16/int8 graphs carry their own precision.
    config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVINORunner(Runner):
    """One compiled model for one ONNX graph; an infer request per calling thread (requests are not shared)."""

    def __init__(self, model: bytes, graph: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 threads: int | None = None, hint: str = "LATENCY", component: str | None = None) -> None:
        super().__init__(f"openvino:{graph}", inputs, outputs)
        self.model, self.graph = model, graph
        self.component = component or graph.split(".")[0]
        self.threads, self.hint = threads, hint
        self.compiled: Any = None
        self._local = threading.local()
        self._output_names = [o.name for o in outputs]

    def _activate(self) -> None:
        ov = import_openvino()
        core = ov.Core()
        try:
            model = core.read_model(self.model)
            self.compiled = core.compile_model(model, "CPU", compile_config(self.threads, self.hint))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BackendError(f"OpenVINO cannot compile {self.graph}: {str(exc).strip().splitlines()[0]}") from exc
        self._check_io()
        self._local = threading.local()

    def _check_io(self) -> None:
        """BackendError unless the compiled model's input/output names are the component's."""
        have_in = sorted(n for p in self.compiled.inputs for n in p.get_names() if n in {s.name for s in self.inputs})
        have_out = {n for p in self.compiled.outputs for n in p.get_names()}
        missing = [s.name for s in self.inputs if s.name not in have_in] + [
            n for n in self._output_names if n not in have_out]
        if missing:
            self.compiled = None
            raise BackendError(f"{self.component}: {self.graph} lacks tensor(s) {missing} that bundle.json declares")

    def _deactivate(self) -> None:
        self.compiled = None
        self._local = threading.local()

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        results = self._request().infer(dict(feed))  # copies outputs (share_outputs=False)
        by_name = {name: value for port, value in results.items() for name in port.get_names()}
        return {name: np.asarray(by_name[name]) for name in self._output_names}
