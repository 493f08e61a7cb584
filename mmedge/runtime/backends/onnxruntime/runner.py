"""ONNX Runtime runner on the CPU execution provider (torch-free)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle_checks import io_problems, raise_io_problems
from mmedge.errors import BackendError, MissingDependencyError, MmedgeError
from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec

log = logging.getLogger(__name__)


def session_options(threads: int | None, optimize: bool = True) -> Any:
    """SessionOptions with full graph optimisation (or none: an already optimized graph) and explicit threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(bfloat16)": "bfloat16", "tensor(int64)": "int64", "tensor(int32)": "int32",
              "tensor(int16)": "int16", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def session_io(args: Any) -> list[tuple[str, str, list[int | str | None]]]:
    """(name, dtype, dims) of ONNX Runtime NodeArgs (session.get_inputs() / get_outputs())."""
    return [(a.name, ORT_DTYPES.get(a.type, a.type), list(a.shape)) for a in args]


def check_session_io(session: Any, component: str, graph: str, inputs: list[TensorSpec],
                     outputs: list[TensorSpec]) -> None:
    """BundleError naming component, tensor, expected vs actual when a session's I/O differs from the specs."""
    raise_io_problems(io_problems(component, graph, inputs, outputs, session_io(session.get_inputs()),
                                  session_io(session.get_outputs())))


@dataclass(frozen=True)
class ModelSource:
    """Where a runner's graph comes from: bytes or a verified path, on demand; the recorded sha256 keys the cache."""

    load: Callable[[], bytes | str]
    sha256: str | None = None  # None: not cached (e.g. a graph made at load time)


class OrtRunner(Runner):
    """One InferenceSession for one ONNX file (or verified bytes, through the graph cache); created on activate()."""

    def __init__(self, path: str | Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 threads: int | None = None, providers: list[str] | None = None, component: str | None = None,
                 source: ModelSource | None = None) -> None:
        super().__init__(f"onnxruntime:{Path(path).name}", inputs, outputs)
        self.path = Path(path)
        self.source = source
        self.component = component or self.path.name.split(".")[0]
        self.threads = threads
        self.providers = providers or ["CPUExecutionProvider"]
        self.session: Any = None
        self._output_names = [o.name for o in outputs]

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "the onnxruntime backend") from exc
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendError(f"ONNX Runtime provider(s) {missing} not available here "
                               f"(available: {ort.get_available_providers()})")
        try:
            self.session = self._session()
        except MmedgeError:
            raise
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        try:
            check_session_io(self.session, self.component, self.path.name, self.inputs, self.outputs)
        except BaseException:
            self.session = None
            raise

    def _session(self) -> Any:
        """A session of the file, or of the verified bytes through the optimized-graph cache."""
        import onnxruntime as ort

        if self.source is None:
            return ort.InferenceSession(str(self.path), sess_options=session_options(self.threads),
                                        providers=self.providers)
        from mmedge.runtime.backends.onnxruntime.graph_cache import cached_session

        return cached_session(self.source.load, self.source.sha256, self.providers,
                              lambda optimize: session_options(self.threads, optimize))

    def _deactivate(self) -> None:
        self.session = None

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = self.session.run(self._output_names, dict(feed))
        return dict(zip(self._output_names, values, strict=True))
