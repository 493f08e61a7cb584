"""The backend registry: one lazy `"module:attr"` table of Backend descriptors, one factory signature.

Every backend folder (`onnxruntime`, `onnxruntime_gpu`, `torch`, `tensorrt`, `openvino`) has a `loader.py`
exporting a `Backend`: its runner factory `(bundle, component, precision, options)`, how it runs
encoders (its executor), and which int8 artifact it runs. Nothing is imported until used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmedge.errors import BackendError
from mmedge.registry import Registry
from mmedge.runtime.options import RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle
    from mmedge.runtime.executors import Executor
    from mmedge.runtime.runner import Runner

RunnerFactory = Callable[["Bundle", str, str, RunnerOptions], "Runner"]
ExecutorFactory = Callable[[dict[str, "Runner"], list[str], RunnerOptions], "Executor"]


def thread_pool_executor(runners: dict[str, Runner], modalities: list[str], options: RunnerOptions) -> Executor:
    """The CPU executor: encoders on a thread pool, in as many lanes as the sessions' threads fit the usable
    cores, and never fewer than 2 (a concurrent call stays concurrent, e.g. sessions that wait on a GPU)."""
    from mmedge.runtime.executors import ThreadPoolEncoders
    from mmedge.runtime.options import usable_cores

    return ThreadPoolEncoders(runners, modalities, lanes=max(2, usable_cores() // (options.threads or 1)))


@dataclass(frozen=True)
class Backend:
    """What the pipeline needs to know about a backend."""

    name: str
    make_runner: RunnerFactory  # (bundle, component, artifact key, options) -> inactive Runner
    make_executor: ExecutorFactory = thread_pool_executor
    int8_artifact: str = "int8"  # which int8 flavour of the bundle this backend runs
    fp32_only: bool = False  # the torch reference
    parallel_load: bool = False  # components may be made and activated on several threads (runtime.loading)
    runtime_module: str | None = None  # imported in the calling thread before a parallel load starts


BACKENDS: Registry[Backend] = Registry(
    "backend",
    {
        "onnxruntime": "mmedge.runtime.backends.onnxruntime.loader:BACKEND",
        "onnxruntime-cuda": "mmedge.runtime.backends.onnxruntime_gpu.loader:CUDA_BACKEND",
        "onnxruntime-trt": "mmedge.runtime.backends.onnxruntime_gpu.loader:TRT_BACKEND",
        "torch": "mmedge.runtime.backends.torch.loader:BACKEND",
        "tensorrt": "mmedge.runtime.backends.tensorrt.loader:BACKEND",
        "openvino": "mmedge.runtime.backends.openvino.loader:BACKEND",
    },
    error=BackendError,
)


def backend_info(name: str) -> Backend:
    """The Backend descriptor of `name` (BackendError listing the choices if unknown)."""
    return BACKENDS.get(name)


def available_backends() -> list[str]:
    """Names of registered backends (not necessarily installed)."""
    return BACKENDS.names()


def register_backend(name: str, target: str | Backend) -> None:
    """Register a backend as 'package.module:BACKEND' (imported on first use) or a Backend object."""
    BACKENDS.register(name, target)


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions | None = None,
                backend: str = "onnxruntime") -> Runner:
    """An inactive runner of `component` at user `precision` on `backend` (int8 → the backend's flavour)."""
    from mmedge.precision import artifact_key

    if component not in bundle.components:
        have = ", ".join(bundle.components)
        raise BackendError(f"bundle {bundle.root} has no component '{component}' (it has: {have})")
    info = backend_info(backend)
    return info.make_runner(bundle, component, artifact_key(precision, backend), options or RunnerOptions())
