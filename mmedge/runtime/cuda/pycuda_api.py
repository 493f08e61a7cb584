"""CudaApi over pycuda, with explicit context management (never `pycuda.autoinit`).

The chosen device's *primary* context is retained (the one TensorRT and the CUDA runtime use)
and pushed around each call, then popped: no thread is ever left with a pushed context (pycuda
aborts the process when a thread exits with a non-empty context stack). Streams are created
non-blocking (CU_STREAM_NON_BLOCKING, as `Stream(flags=...)` takes it). No released pycuda
has CUDA-graph capture, so the graph calls raise a BackendError pointing at cuda-python.
pycuda works with objects, so this class keeps them in tables keyed by the int handles the
CudaApi protocol uses (streams by their real cudaStream_t value, which TensorRT needs).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.cuda.contract import DeviceInfo

log = logging.getLogger(__name__)

CU_STREAM_NON_BLOCKING = 1  # cuda.h CUstream_flags; pycuda has no named constant for it
NO_GRAPHS = (
    "pycuda has no CUDA-graph capture (no released pycuda exposes stream capture); "
    "use the cuda-python CUDA API for cuda_graph: pip install cuda-python and set MMEDGE_CUDA_API=cuda-python"
)


def _driver() -> Any:
    try:
        import pycuda.driver as drv
    except ImportError as exc:
        raise MissingDependencyError("pycuda", "the pycuda CUDA API", "pycuda") from exc
    return drv


class PyCudaApi:
    """CudaApi implementation over pycuda.driver."""

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        self._drv = _driver()
        self._device_index = device
        self._contexts: dict[int, Any] = {}  # device -> its retained primary context
        self._lock = threading.Lock()
        self._device_mem: dict[int, Any] = {}
        self._pinned: dict[int, Any] = {}  # host pointer -> pycuda's pagelocked allocation
        self._streams: dict[int, Any] = {}
        self._events: dict[int, Any] = {}

    # ---- context handling -----------------------------------------------------------------
    def _call(self, what: str, func: Any, *args: Any) -> Any:
        """Run a pycuda call with the primary context pushed, then popped; pycuda errors → BackendError."""
        try:
            with self._current():
                return func(*args)
        except self._drv.Error as exc:
            raise BackendError(f"CUDA call {what} failed (pycuda): {exc}") from exc

    def _primary_context(self) -> Any:
        with self._lock:
            ctx = self._contexts.get(self._device_index)
            if ctx is None:
                self._drv.init()
                ctx = self._drv.Device(self._device_index).retain_primary_context()
                self._contexts[self._device_index] = ctx
            return ctx

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        """The device's primary context current for one call: pushed on entry, popped on exit."""
        self._primary_context().push()
        try:
            yield
        finally:
            self._drv.Context.pop()

    def close(self) -> None:
        """Nothing to pop: no context stays pushed between calls (kept for API compatibility)."""

    def set_device(self, device: int) -> None:
        """Make `device` the one later calls use (its primary context, retained on first use)."""
        count = self.device_count()
        if not 0 <= device < count:
            raise BackendError(f"CUDA device {device} requested but {count} device(s) are visible")
        self._device_index = device

    # ---- device ---------------------------------------------------------------------------
    def device_count(self) -> int:
        """Number of visible CUDA devices (raises BackendError when CUDA is unusable)."""
        try:
            self._drv.init()
            return int(self._drv.Device.count())
        except self._drv.Error as exc:
            raise BackendError(f"CUDA is not usable through pycuda: {exc}") from exc

    def device_info(self, device: int = 0) -> DeviceInfo:
        """Name, compute capability, size and versions of `device`."""
        dev = self._call("Device", self._drv.Device, device)
        major, minor = dev.compute_capability()
        built = self._drv.get_version()  # the CUDA pycuda was compiled against: (major, minor, rev)
        driver = int(self._drv.get_driver_version())
        sm_attribute = self._drv.device_attribute.MULTIPROCESSOR_COUNT
        return DeviceInfo(
            index=device,
            name=str(dev.name()).strip(),
            major=int(major),
            minor=int(minor),
            runtime_version=f"{built[0]}.{built[1]}",
            driver_version=f"{driver // 1000}.{(driver % 1000) // 10}",
            sm_count=int(self._call("Device.get_attribute", dev.get_attribute, sm_attribute)),
            total_memory=int(self._call("Device.total_memory", dev.total_memory)),
        )

    # ---- memory ---------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        """Allocate device memory; return the device pointer."""
        alloc = self._call("mem_alloc", self._drv.mem_alloc, max(nbytes, 1))
        ptr = int(alloc)
        self._device_mem[ptr] = alloc
        return ptr

    def free(self, ptr: int) -> None:
        """Free device memory from `malloc`."""
        alloc = self._device_mem.pop(ptr, None)
        if alloc is None:
            raise BackendError("free: pointer was not allocated by malloc (or was freed)")
        self._call("mem_free", alloc.free)

    def host_alloc(self, nbytes: int) -> np.ndarray:
        """Allocate pinned (page-locked) host memory as a flat uint8 numpy array."""
        array: np.ndarray = self._call(
            "pagelocked_empty", self._drv.pagelocked_empty, (max(nbytes, 1),), np.uint8
        )
        self._pinned[int(array.ctypes.data)] = array.base
        return array[:nbytes]

    def host_free(self, array: np.ndarray) -> None:
        """Free a pinned array from `host_alloc`."""
        owner = self._pinned.pop(int(array.ctypes.data), None)
        if owner is None:
            raise BackendError("host_free: this array was not allocated by host_alloc (or was freed)")
        self._call("pagelocked free", owner.free)

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: int) -> None:
        """Copy the first `nbytes` of pinned `src` to device `dst` on `stream`."""
        self._call("memcpy_htod_async", self._drv.memcpy_htod_async, dst, src[:nbytes], self._streams[stream])

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` from device `src` into pinned `dst` on `stream`."""
        self._call("memcpy_dtoh_async", self._drv.memcpy_dtoh_async, dst[:nbytes], src, self._streams[stream])

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` between device buffers on `stream`."""
        self._call("memcpy_dtod_async", self._drv.memcpy_dtod_async, dst, src, nbytes, self._streams[stream])

    # ---- streams and events ---------------------------------------------------------------
    def stream_create(self) -> int:
        """Create a non-blocking stream; return its cudaStream_t value."""
        stream = self._call("Stream", self._drv.Stream, CU_STREAM_NON_BLOCKING)
        handle = int(stream.handle)
        self._streams[handle] = stream
        return handle

    def stream_synchronize(self, stream: int) -> None:
        """Block until all work on `stream` is done."""
        self._call("Stream.synchronize", self._streams[stream].synchronize)

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream from `stream_create` (pycuda frees it with the object)."""
        self._streams.pop(stream, None)

    def stream_wait_event(self, stream: int, event: int) -> None:
        """Make later work on `stream` wait for `event`."""
        self._call("Stream.wait_for_event", self._streams[stream].wait_for_event, self._events[event])

    def event_create(self) -> int:
        """Create a timing event."""
        event = self._call("Event", self._drv.Event)
        self._events[id(event)] = event
        return id(event)

    def event_record(self, event: int, stream: int) -> None:
        """Record `event` on `stream`."""
        self._call("Event.record", self._events[event].record, self._streams[stream])

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two completed events."""
        return float(self._call("Event.time_since", self._events[end].time_since, self._events[start]))

    def event_destroy(self, event: int) -> None:
        """Destroy an event from `event_create` (pycuda frees it with the object)."""
        self._events.pop(event, None)

    # ---- CUDA graphs: not in pycuda --------------------------------------------------------
    def graph_begin_capture(self, stream: int) -> None:
        """Not available: pycuda has no stream capture (BackendError naming cuda-python)."""
        raise BackendError(NO_GRAPHS)

    def graph_end_capture(self, stream: int) -> int:
        """Not available: pycuda has no stream capture (BackendError naming cuda-python)."""
        raise BackendError(NO_GRAPHS)

    def graph_launch(self, graph: int, stream: int) -> None:
        """Not available: pycuda has no CUDA graphs (BackendError naming cuda-python)."""
        raise BackendError(NO_GRAPHS)

    def graph_destroy(self, graph: int) -> None:
        """Nothing to destroy: pycuda never creates a graph here."""
