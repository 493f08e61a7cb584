"""ONNX Runtime on the GPU: "onnxruntime-cuda" (CUDAExecutionProvider) and "onnxruntime-trt"
(TensorrtExecutionProvider) backends.

Never a silent CPU fallback (fixed decision 7): the provider must be in
`onnxruntime.get_available_providers()`. The session is created with [provider,
CPUExecutionProvider], because ONNX Runtime deliberately places shape sub-graphs (Shape →
Gather → Concat …, whose outputs are small int64 tensors) on the CPU and a GPU-only session
rejects any dynamic-axis encoder. Where every node landed is read from ONNX Runtime's own
profile of one probe run at activation (`enable_profiling`: one event per node with its
`provider`, `op_name` and `output_type_shape`), logged, and `placement_check` raises a
BackendError when any compute node ran on the CPU. Inputs are bound from host numpy arrays
and outputs bound to the CUDA device through I/O binding, then copied back.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.backends.onnxruntime.runner import check_session_io
from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec

log = logging.getLogger(__name__)

CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
CPU_EP = "CPUExecutionProvider"
# Ops ONNX Runtime computes shapes with; allowed on the CPU only when their outputs are small integer tensors.
SHAPE_OPS = frozenset({
    "Shape", "Size", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Reshape", "Identity",
    "Range", "ConstantOfShape", "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Min", "Max", "Floor",
    "Ceil", "Equal", "Less", "Greater", "Not", "And", "Or", "Where", "ReduceProd", "ReduceSum", "ReduceMin",
    "ReduceMax",
})
SHAPE_DTYPES = frozenset({"int64", "int32", "bool"})
MAX_SHAPE_ELEMENTS = 64  # a shape tensor holds one value per dimension (or a few of them)
INSTALL_HINT = (
    "install the GPU build of ONNX Runtime: pip uninstall -y onnxruntime && pip install onnxruntime-gpu "
    "(on Jetson: the onnxruntime-gpu wheel for your JetPack from the Jetson AI Lab / Jetson Zoo index)"
)


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime-gpu", "the ONNX Runtime GPU backends", "onnxruntime-gpu"
        ) from exc
    return ort


def require_provider(provider: str) -> None:
    """BackendError naming the fix unless ONNX Runtime here offers `provider`."""
    available = list(_ort().get_available_providers())
    if provider not in available:
        raise BackendError(
            f"ONNX Runtime's {provider} is not available here (available: {', '.join(available)}): "
            f"{INSTALL_HINT}"
        )


def gpu_session_options(threads: int | None = None, profile_prefix: Path | None = None) -> Any:
    """SessionOptions for a GPU session; with `profile_prefix`, profiling on (to read node placements)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    return opts


@dataclass(frozen=True)
class NodePlacement:
    """One node as ONNX Runtime ran it: name, op type, execution provider, output dtypes and shapes."""

    name: str
    op: str
    provider: str
    outputs: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def is_shape_computation(self) -> bool:
        """A shape op whose every output is a small integer tensor (what ORT puts on the CPU on purpose)."""
        if self.op not in SHAPE_OPS or not self.outputs:
            return False
        return all(dtype in SHAPE_DTYPES and _elements(shape) <= MAX_SHAPE_ELEMENTS for dtype, shape in self.outputs)

    def __str__(self) -> str:
        return f"{self.name} ({self.op}) on {self.provider}"


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= max(int(dim), 0)
    return count


def node_placements(events: Iterable[dict[str, Any]]) -> list[NodePlacement]:
    """The nodes of an ONNX Runtime profile (its "Node" events), one entry per node, in run order."""
    seen: dict[str, NodePlacement] = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or "provider" not in args:
            continue
        name = str(event.get("name", "")).removesuffix("_kernel_time")
        outputs = tuple(
            (str(dtype), tuple(int(d) for d in shape))
            for item in args.get("output_type_shape", [])
            for dtype, shape in item.items()
        )
        seen.setdefault(name, NodePlacement(name, str(args.get("op_name", "?")), str(args["provider"]), outputs))
    return list(seen.values())


def placement_check(placements: list[NodePlacement], provider: str, model: str) -> None:
    """Log where the nodes of `model` ran; BackendError naming every compute node that ran off the GPU."""
    by_provider: dict[str, list[NodePlacement]] = {}
    for node in placements:
        by_provider.setdefault(node.provider, []).append(node)
    log.info("%s node placement: %s", model, ", ".join(f"{len(v)} on {k}" for k, v in sorted(by_provider.items())))
    for node in placements:
        log.debug("%s: %s", model, node)
    if not placements:
        raise BackendError(f"ONNX Runtime reported no node placement for {model}; cannot show it runs on {provider}")
    off_gpu = [n for n in placements if n.provider not in (provider, CUDA_EP) and not n.is_shape_computation]
    if off_gpu:
        more = f"; … {len(off_gpu) - 8} more" if len(off_gpu) > 8 else ""
        raise BackendError(
            f"ONNX Runtime placed {len(off_gpu)} compute node(s) of {model} off {provider}: "
            f"{'; '.join(str(n) for n in off_gpu[:8])}{more}; no CPU fallback is allowed: use the tensorrt "
            "or the other GPU backend, or the onnxruntime (CPU) backend explicitly"
        )


def probe_feed(inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Ones at each input's opt shape (a named axis: its opt range value, else 1), for the placement probe."""
    feed: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = tuple(d if isinstance(d, int) else spec.ranges.get(d, (1, 1, 1))[1] for d in spec.shape)
        feed[spec.name] = np.ones(shape, dtype=np.dtype(spec.dtype))
    return feed


def profile_placements(session: Any, feed: dict[str, np.ndarray]) -> list[NodePlacement]:
    """Run `session` (created with profiling on) once and read where each node ran; profiling then stops."""
    session.run(None, feed)
    profile = Path(session.end_profiling())
    try:
        events = json.loads(profile.read_text())
    finally:
        profile.unlink(missing_ok=True)
    return node_placements(events if isinstance(events, list) else events.get("traceEvents", []))


def trt_provider_options(precision: str, cache_dir: Path, device_id: int = 0) -> dict[str, Any]:
    """TensorRT EP options: engine/timing caches in the bundle; fp16/int8 kernels for those ONNX files.

    The TensorRT EP builds weakly typed networks, so an fp16 ONNX needs trt_fp16_enable and a
    QDQ (int8) ONNX needs trt_int8_enable (explicit quantization, no calibration table).
    """
    return {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_fp16_enable": precision == "fp16" or precision.startswith("int8"),
        "trt_int8_enable": precision.startswith("int8"),
    }


class OrtGpuRunner(Runner):
    """One InferenceSession on one GPU execution provider, fed through I/O binding."""

    def __init__(
        self,
        path: Path,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        provider: str,
        provider_options: dict[str, Any] | None = None,
        device_id: int = 0,
        threads: int | None = None,
        component: str = "",
    ) -> None:
        require_provider(provider)
        super().__init__(f"{provider}:{Path(path).name}", inputs, outputs)
        self.path, self.component = Path(path), component or Path(path).stem.split(".")[0]
        self.provider, self.device_id = provider, device_id
        self.provider_options = {"device_id": device_id, **(provider_options or {})}
        self._threads = threads
        self._session: Any = None
        self._output_names = [o.name for o in outputs]

    def _activate(self) -> None:
        """Create the session and check node placement (BackendError if a compute node ran on the CPU)."""
        ort = _ort()
        workdir = Path(tempfile.mkdtemp(prefix="mmedge-ort-placement-"))
        try:
            try:
                session = ort.InferenceSession(
                    str(self.path),
                    sess_options=gpu_session_options(self._threads, workdir / "placement"),
                    providers=[(self.provider, self.provider_options), CPU_EP],
                )
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException types
                raise BackendError(
                    f"ONNX Runtime cannot create a {self.provider} session for {self.path.name} ({exc}); "
                    "use the other GPU backend or the onnxruntime (CPU) backend explicitly"
                ) from exc
            used = list(session.get_providers())
            if not used or used[0] != self.provider:
                raise BackendError(f"ONNX Runtime created {self.path.name} with providers {used}, not {self.provider}")
            check_session_io(session, self.component, self.path.name, self.inputs, self.outputs)
            try:
                placements = profile_placements(session, probe_feed(self.inputs))
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot read ONNX Runtime's node placement of {self.path.name}: {exc}") from exc
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        placement_check(placements, self.provider, self.path.name)
        self._session = session
        log.info("%s on %s", self.path.name, self.provider)

    def _deactivate(self) -> None:
        """Drop the session."""
        self._session = None

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Bind host inputs and device outputs, run, copy outputs to the host."""
        binding = self._session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self._output_names:
            binding.bind_output(name, "cuda", self.device_id)
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime ({self.provider}) failed on {self.path.name}: {exc}") from exc
        values = binding.copy_outputs_to_cpu()
        return dict(zip(self._output_names, values, strict=True))

