"""The small CUDA surface the TensorRT runner needs, and the choice between its implementations.

Two implementations: cuda-python (`cuda.bindings.runtime`, the default) and pycuda. One is
chosen per process (explicitly, via MMEDGE_CUDA_API, or by availability with cuda-python
first), logged, and never mixed: asking for the other one later is an error. Handles are
plain ints (device pointers, streams as cudaStream_t values TensorRT can use, opaque ids for
events and graphs). Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError

log = logging.getLogger(__name__)

CUDA_APIS: tuple[str, ...] = ("cuda-python", "pycuda")
ENV_VAR = "MMEDGE_CUDA_API"
_PIP = {"cuda-python": "cuda-python", "pycuda": "pycuda"}
_MODULE = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver"}


@dataclass(frozen=True)
class DeviceInfo:
    """Name, compute capability and CUDA versions of one GPU."""

    index: int
    name: str
    major: int
    minor: int
    runtime_version: str  # "12.6"
    driver_version: str  # "12.8" (the newest CUDA the driver supports)

    @property
    def compute_capability(self) -> str:
        """Compute capability as "major.minor"."""
        return f"{self.major}.{self.minor}"


@runtime_checkable
class CudaApi(Protocol):
    """What the runner and the GPU pipeline need from CUDA, in one place."""

    name: str

    def device_count(self) -> int:
        """Number of visible CUDA devices (raises BackendError when CUDA is unusable)."""
        ...

    def device_info(self, device: int = 0) -> DeviceInfo:
        """Name, compute capability and versions of `device`."""
        ...

    def malloc(self, nbytes: int) -> int:
        """Allocate device memory; return the device pointer."""
        ...

    def free(self, ptr: int) -> None:
        """Free device memory from `malloc`."""
        ...

    def host_alloc(self, nbytes: int) -> np.ndarray:
        """Allocate pinned (page-locked) host memory as a flat uint8 numpy array."""
        ...

    def host_free(self, array: np.ndarray) -> None:
        """Free a pinned array from `host_alloc`."""
        ...

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: int) -> None:
        """Copy the first `nbytes` of pinned `src` to device `dst` on `stream`."""
        ...

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` from device `src` into pinned `dst` on `stream`."""
        ...

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` between device buffers on `stream`."""
        ...

    def stream_create(self) -> int:
        """Create a non-blocking stream; return its cudaStream_t value."""
        ...

    def stream_synchronize(self, stream: int) -> None:
        """Block until all work on `stream` is done."""
        ...

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream from `stream_create`."""
        ...

    def stream_wait_event(self, stream: int, event: int) -> None:
        """Make later work on `stream` wait for `event`."""
        ...

    def event_create(self) -> int:
        """Create a timing event."""
        ...

    def event_record(self, event: int, stream: int) -> None:
        """Record `event` on `stream`."""
        ...

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two completed events."""
        ...

    def event_destroy(self, event: int) -> None:
        """Destroy an event from `event_create`."""
        ...

    def graph_begin_capture(self, stream: int) -> None:
        """Start capturing the work enqueued on `stream` into a CUDA graph."""
        ...

    def graph_end_capture(self, stream: int) -> int:
        """Stop capturing; instantiate the graph and return its executable handle."""
        ...

    def graph_launch(self, graph: int, stream: int) -> None:
        """Launch an instantiated graph on `stream`."""
        ...

    def graph_destroy(self, graph: int) -> None:
        """Destroy an instantiated graph."""
        ...


def version_string(encoded: int) -> str:
    """CUDA's integer version (12060) as "12.6"."""
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


_lock = threading.Lock()
_active: CudaApi | None = None


def _available(name: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULE[name]) is not None
    except (ImportError, ValueError):
        return False


def _construct(name: str) -> CudaApi:
    if name == "cuda-python":
        from mmedge.backends.tensorrt.cuda_python import CudaPythonApi

        return CudaPythonApi()
    from mmedge.backends.tensorrt.pycuda_impl import PyCudaApi

    return PyCudaApi()


def _resolve_name(name: str | None) -> str:
    requested = name or os.environ.get(ENV_VAR) or None
    if requested is not None:
        if requested not in CUDA_APIS:
            raise BackendError(f"unknown CUDA API '{requested}' (choose from: {', '.join(CUDA_APIS)})")
        if not _available(requested):
            raise MissingDependencyError(_PIP[requested], f"the CUDA API '{requested}'", _PIP[requested])
        return requested
    for candidate in CUDA_APIS:
        if _available(candidate):
            return candidate
    raise MissingDependencyError(
        "cuda-python",
        "the TensorRT backend (CUDA streams and buffers)",
        "cuda-python (or: pip install pycuda)",
    )


def get_cuda_api(name: str | None = None, device: int = 0) -> CudaApi:
    """The process's CUDA API: `name`, else $MMEDGE_CUDA_API, else cuda-python, else pycuda.

    Raises BackendError for an unknown name, a name that differs from the API already in use,
    or when CUDA is not usable (no GPU / driver); MissingDependencyError when not installed.
    """
    global _active
    with _lock:
        chosen = _resolve_name(name) if name is not None or _active is None else _active.name
        if _active is not None:
            if chosen != _active.name:
                raise BackendError(
                    f"CUDA API '{chosen}' was requested but '{_active.name}' is already in use "
                    "in this process; mixing them is not supported: pass the same choice "
                    f"everywhere (or set {ENV_VAR})"
                )
            return _active
        api = _construct(chosen)
        count = api.device_count()
        if device >= count:
            raise BackendError(f"CUDA device {device} requested but {count} device(s) are visible")
        log.info("CUDA API: %s (%d device(s))", chosen, count)
        _active = api
        return api


def probe_cuda(name: str | None = None) -> tuple[bool, str]:
    """Whether CUDA is usable (without making the API the process's choice), and why not."""
    try:
        chosen = _resolve_name(name)
        count = _construct(chosen).device_count()
    except (BackendError, MissingDependencyError) as exc:
        return False, str(exc)
    if count < 1:
        return False, f"{chosen}: no CUDA device is visible"
    return True, f"{chosen}: {count} device(s)"


def reset_cuda_api() -> None:
    """Forget the process's CUDA API choice (for tests; do not call with live runners)."""
    global _active
    with _lock:
        _active = None
