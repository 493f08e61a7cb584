"""Loaders of the "onnxruntime-cuda" and "onnxruntime-trt" backends (ONNX Runtime's GPU providers only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmedge.bundle import ENGINE_DIR
from mmedge.precision import TRT_INT8
from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.onnxruntime_gpu.runner import (
    CUDA_EP,
    TRT_EP,
    OrtGpuRunner,
    require_provider,
    trt_provider_options,
)
from mmedge.runtime.options import RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle


@dataclass(frozen=True)
class OrtGpuOptions:
    """Settings of the ONNX Runtime GPU backends."""

    provider_options: dict[str, Any] = field(default_factory=dict)  # merged over mmedge's provider options


def _make(bundle: Bundle, component: str, precision: str, options: RunnerOptions, provider: str) -> OrtGpuRunner:
    name = "onnxruntime-trt" if provider == TRT_EP else "onnxruntime-cuda"
    settings = options.section(name, OrtGpuOptions, uses=("threads", "device"))
    require_provider(provider)  # before touching the bundle folder
    extra = dict(settings.provider_options)
    if provider == TRT_EP:
        cache = bundle.path(f"{ENGINE_DIR}/ort_trt_cache")
        cache.mkdir(parents=True, exist_ok=True)
        extra = {**trt_provider_options(precision, cache, options.device), **extra}
    comp = bundle.components[component]
    return OrtGpuRunner(bundle.artifact_path(component, precision), comp.inputs, comp.outputs, provider,
                        provider_options=extra, device_id=options.device, threads=options.threads,
                        component=component)


def make_cuda_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> OrtGpuRunner:
    """Backend "onnxruntime-cuda": the component on ONNX Runtime's CUDAExecutionProvider."""
    return _make(bundle, component, precision, options, CUDA_EP)


def make_trt_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> OrtGpuRunner:
    """Backend "onnxruntime-trt": the component on ONNX Runtime's TensorrtExecutionProvider."""
    return _make(bundle, component, precision, options, TRT_EP)


CUDA_BACKEND = Backend("onnxruntime-cuda", make_cuda_runner)
TRT_BACKEND = Backend("onnxruntime-trt", make_trt_runner, int8_artifact=TRT_INT8)
