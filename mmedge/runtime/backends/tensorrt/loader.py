"""Loader of the "tensorrt" backend: the component's engine for this machine, run on its own CUDA stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmedge.precision import TRT_INT8
from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.tensorrt.env import TrtEnvironment, probe_environment, require_tensorrt
from mmedge.runtime.options import RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle
    from mmedge.runtime.backends.tensorrt.executor import CudaStreamEncoders
    from mmedge.runtime.backends.tensorrt.runner import TensorRTRunner
    from mmedge.runtime.runner import Runner


@dataclass(frozen=True)
class TensorRTOptions:
    """Settings of the tensorrt backend."""

    cuda_api: str | None = None  # "cuda-python" | "pycuda" (default: $MMEDGE_CUDA_API, else the first installed)
    cuda_graph: bool = False  # replay each engine's compute as a CUDA graph (fixed shapes)
    env: TrtEnvironment | None = None  # the machine facts engines are matched against (default: probed)


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> TensorRTRunner:
    """Inactive runner of `component`'s engine at `precision`; the sidecar is checked against this machine first."""
    from mmedge.runtime.backends.tensorrt.cache import select_engine
    from mmedge.runtime.backends.tensorrt.runner import TensorRTRunner
    from mmedge.runtime.cuda.select import get_cuda_api

    settings = options.section("tensorrt", TensorRTOptions, uses=("device",))
    require_tensorrt()
    cuda = get_cuda_api(settings.cuda_api, device=options.device)
    env = settings.env or probe_environment(cuda, device=options.device)
    sidecar = select_engine(bundle, component, precision, env)
    comp = bundle.components[component]
    return TensorRTRunner(bundle, sidecar, comp.inputs, comp.outputs, cuda,
                          cuda_graph=settings.cuda_graph, env=env, device=options.device)


def make_executor(runners: dict[str, Runner], modalities: list[str], options: RunnerOptions) -> CudaStreamEncoders:
    """Encoders on their own CUDA streams, joined by events before the head."""
    from mmedge.runtime.backends.tensorrt.executor import CudaStreamEncoders

    return CudaStreamEncoders(runners, modalities)


BACKEND = Backend("tensorrt", make_runner, make_executor, int8_artifact=TRT_INT8)
