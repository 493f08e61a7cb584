"""The Runner contract (one per component per backend) and the backend registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mmedge.errors import BackendError
from mmedge.specs import TensorSpec

if TYPE_CHECKING:
    from mmedge.bundle import Bundle


@runtime_checkable
class Runner(Protocol):
    """Runs one component (encoder or fusion head); owns its sessions/streams/buffers."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on a feed of named float32/int64 arrays; return named outputs."""
        ...


class RunnerFactory(Protocol):
    """Builds the Runner of one component of a bundle at one precision."""

    def __call__(self, bundle: Bundle, component: str, precision: str, **options: Any) -> Runner: ...


# backend name -> "module:function" so that registering costs no import
_REGISTRY: dict[str, str] = {
    "onnxruntime": "mmedge.runtime.backends.onnxruntime.runner:make_runner",
    "torch": "mmedge.runtime.backends.torch.runner:make_runner",
    "tensorrt": "mmedge.runtime.backends.tensorrt.runner:make_runner",
    "onnxruntime-cuda": "mmedge.runtime.backends.onnxruntime_gpu.runner:make_cuda_runner",
    "onnxruntime-trt": "mmedge.runtime.backends.onnxruntime_gpu.runner:make_trt_runner",
}


def register_backend(name: str, target: str) -> None:
    """Register a backend as 'package.module:factory' (imported lazily on first use)."""
    _REGISTRY[name] = target


def available_backends() -> list[str]:
    """Names of registered backends (not necessarily installed)."""
    return sorted(_REGISTRY)


def get_runner_factory(name: str) -> RunnerFactory:
    """The factory of backend `name`; a BackendError if unknown."""
    target = _REGISTRY.get(name)
    if target is None:
        raise BackendError(f"unknown backend '{name}' (choose from: {', '.join(available_backends())})")
    module_name, func = target.split(":")
    factory: Callable[..., Runner] = getattr(importlib.import_module(module_name), func)
    return factory  # type: ignore[return-value]


def check_feed(specs: list[TensorSpec], feed: dict[str, np.ndarray], where: str | Path) -> None:
    """Validate names, dtypes and ranks of a feed against a component's input specs."""
    expected = {s.name for s in specs}
    if set(feed) != expected:
        raise BackendError(f"{where}: inputs {sorted(feed)} do not match the graph's {sorted(expected)}")
    for spec in specs:
        arr = feed[spec.name]
        if arr.dtype != np.dtype(spec.dtype) or arr.ndim != len(spec.shape):
            raise BackendError(f"{where}: input '{spec.name}' expects {spec.dtype} rank {len(spec.shape)}, "
                               f"got {arr.dtype} shape {arr.shape}")
