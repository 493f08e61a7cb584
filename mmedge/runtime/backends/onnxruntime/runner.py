"""ONNX Runtime runner on the CPU execution provider (torch-free)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.runner import check_feed
from mmedge.specs import TensorSpec

if TYPE_CHECKING:
    from mmedge.bundle import Bundle

log = logging.getLogger(__name__)


def session_options(threads: int | None) -> Any:
    """SessionOptions with full graph optimisation and an explicit intra-op thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


class OrtRunner:
    """One InferenceSession for one ONNX file."""

    def __init__(self, path: str | Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 threads: int | None = None, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "the onnxruntime backend") from exc
        self.path = Path(path)
        self.inputs, self.outputs = inputs, outputs
        self.providers = providers or ["CPUExecutionProvider"]
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendError(f"ONNX Runtime provider(s) {missing} not available here "
                               f"(available: {ort.get_available_providers()})")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=session_options(threads),
                                                providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        self._output_names = [o.name for o in outputs]

    def __enter__(self) -> OrtRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session = None  # type: ignore[assignment]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session on a validated feed."""
        check_feed(self.inputs, feed, self.path.name)
        values = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, values, strict=True))


def make_runner(bundle: Bundle, component: str, precision: str, threads: int | None = None,
                **options: Any) -> OrtRunner:
    """Runner of `component` at `precision` from a bundle."""
    if options:
        raise BackendError(f"onnxruntime backend: unknown option(s) {sorted(options)}")
    comp = bundle.components[component]
    return OrtRunner(bundle.artifact_path(component, precision), comp.inputs, comp.outputs, threads)
