"""ONNX Runtime on the GPU: "onnxruntime-cuda" (CUDAExecutionProvider) and "onnxruntime-trt"
(TensorrtExecutionProvider) backends.

Never a silent CPU fallback (fixed decision 7): the provider must be in
`onnxruntime.get_available_providers()`, the session is created with that provider only, and
`session.disable_cpu_ep_fallback` makes session creation fail if any node would land on the
CPU; the session's providers are checked afterwards. Inputs are bound from host numpy arrays
and outputs bound to the CUDA device through I/O binding, then copied back.
"""

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

CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
INSTALL_HINT = (
    "install the GPU build of ONNX Runtime: pip uninstall -y onnxruntime && pip install onnxruntime-gpu "
    "(on Jetson: the onnxruntime-gpu wheel for your JetPack from the Jetson AI Lab / Jetson Zoo index)"
)
RUNNER_OPTIONS = ("device_id", "threads", "provider_options")


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


def gpu_session_options(threads: int | None = None) -> Any:
    """SessionOptions that refuse to place any node on the CPU EP."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return opts


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


class OrtGpuRunner:
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
    ) -> None:
        require_provider(provider)
        self.path, self.inputs, self.outputs = Path(path), inputs, outputs
        self.provider, self.device_id = provider, device_id
        self.provider_options = {"device_id": device_id, **(provider_options or {})}
        self._threads = threads
        self._session: Any = None
        self._output_names = [o.name for o in outputs]

    def __enter__(self) -> OrtGpuRunner:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the session (BackendError if any node would run on the CPU)."""
        if self._session is not None:
            return
        ort = _ort()
        try:
            session = ort.InferenceSession(
                str(self.path),
                sess_options=gpu_session_options(self._threads),
                providers=[(self.provider, self.provider_options)],
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException types
            raise BackendError(
                f"ONNX Runtime cannot run {self.path.name} on {self.provider} alone ({exc}); "
                "no CPU fallback is allowed: use the other GPU backend or the onnxruntime (CPU) "
                "backend explicitly"
            ) from exc
        used = list(session.get_providers())
        if not used or used[0] != self.provider:
            raise BackendError(
                f"ONNX Runtime created {self.path.name} with providers {used}, not {self.provider}"
            )
        self._session = session
        log.info("%s on %s", self.path.name, self.provider)

    def close(self) -> None:
        """Drop the session."""
        self._session = None

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Bind host inputs and device outputs, run, copy outputs to the host."""
        check_feed(self.inputs, feed, self.path.name)
        self.open()
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


def _make(
    bundle: Bundle, component: str, precision: str, provider: str, options: dict[str, Any]
) -> OrtGpuRunner:
    unknown = sorted(set(options) - set(RUNNER_OPTIONS))
    if unknown:
        raise BackendError(
            f"{provider} backend: unknown option(s) {unknown} (known: {', '.join(RUNNER_OPTIONS)})"
        )
    comp = bundle.components.get(component)
    if comp is None:
        raise BackendError(f"bundle {bundle.root} has no component '{component}'")
    require_provider(provider)  # before touching the bundle folder
    device_id = int(options.get("device_id", 0))
    extra = dict(options.get("provider_options") or {})
    if provider == TRT_EP:
        from mmedge.runtime.backends.tensorrt.cache import engine_precision

        precision = engine_precision(precision)  # int8 on TensorRT = the TensorRT-flavoured QDQ ONNX
        cache = bundle.path("engines/ort_trt_cache")
        cache.mkdir(parents=True, exist_ok=True)
        extra = {**trt_provider_options(precision, cache, device_id), **extra}
    return OrtGpuRunner(
        bundle.artifact_path(component, precision),
        comp.inputs,
        comp.outputs,
        provider,
        provider_options=extra,
        device_id=device_id,
        threads=options.get("threads"),
    )


def make_cuda_runner(bundle: Bundle, component: str, precision: str, **options: Any) -> OrtGpuRunner:
    """Backend "onnxruntime-cuda": the component on ONNX Runtime's CUDAExecutionProvider only."""
    return _make(bundle, component, precision, CUDA_EP, options)


def make_trt_runner(bundle: Bundle, component: str, precision: str, **options: Any) -> OrtGpuRunner:
    """Backend "onnxruntime-trt": the component on ONNX Runtime's TensorrtExecutionProvider only."""
    return _make(bundle, component, precision, TRT_EP, options)
