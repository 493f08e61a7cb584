"""The CUDA contract: what the TensorRT runner and its executor need from CUDA, in one place.

Implementations (cuda_python.py, pycuda_api.py) import this module and nothing else of the
CUDA layer; `select.py` picks one per process. Handles are plain ints (device pointers,
cudaStream_t values TensorRT can use, opaque ids for events and graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class DeviceInfo:
    """Name, compute capability, size and CUDA versions of one GPU."""

    index: int
    name: str
    major: int
    minor: int
    runtime_version: str  # "12.6" (the CUDA runtime of the Python binding, not TensorRT's)
    driver_version: str  # "12.8" (the newest CUDA the driver supports)
    sm_count: int = 0  # streaming multiprocessors (Orin modules share name and 8.7, not this)
    total_memory: int = 0  # bytes of device memory (on Jetson: the shared system memory)

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
        """Name, compute capability, size and versions of `device`."""
        ...

    def set_device(self, device: int) -> None:
        """Make `device` the one later calls (allocations, streams, events) use."""
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
