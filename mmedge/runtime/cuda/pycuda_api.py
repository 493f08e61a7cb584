"""CudaApi over pycuda, with explicit context management (never `pycuda.autoinit`).

The device's *primary* context is retained (the one TensorRT and the CUDA runtime use) and
pushed on each thread that calls in; `close()` pops and releases it. pycuda works with
objects, so this class keeps them in tables keyed by the int handles the CudaApi protocol
uses (streams by their real cudaStream_t value, which TensorRT needs).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.cuda.contract import DeviceInfo

log = logging.getLogger(__name__)


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
        self._ctx: Any = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._device_mem: dict[int, Any] = {}
        self._pinned: dict[int, Any] = {}  # host pointer -> pycuda's pagelocked allocation
        self._streams: dict[int, Any] = {}
        self._events: dict[int, Any] = {}
        self._graphs: dict[int, Any] = {}

    # ---- context handling -----------------------------------------------------------------
    def _call(self, what: str, func: Any, *args: Any) -> Any:
        """Run a pycuda call with the primary context current; map pycuda errors to BackendError."""
        try:
            self._ensure_context()
            return func(*args)
        except self._drv.Error as exc:
            raise BackendError(f"CUDA call {what} failed (pycuda): {exc}") from exc

    def _ensure_context(self) -> None:
        with self._lock:
            if self._ctx is None:
                self._drv.init()
                self._ctx = self._drv.Device(self._device_index).retain_primary_context()
        if not getattr(self._local, "pushed", False):
            self._ctx.push()
            self._local.pushed = True

    def close(self) -> None:
        """Pop the primary context from this thread (other threads keep theirs until they exit)."""
        if self._ctx is not None and getattr(self._local, "pushed", False):
            self._drv.Context.pop()
            self._local.pushed = False

    # ---- device ---------------------------------------------------------------------------
    def device_count(self) -> int:
        """Number of visible CUDA devices (raises BackendError when CUDA is unusable)."""
        try:
            self._drv.init()
            return int(self._drv.Device.count())
        except self._drv.Error as exc:
            raise BackendError(f"CUDA is not usable through pycuda: {exc}") from exc

    def device_info(self, device: int = 0) -> DeviceInfo:
        """Name, compute capability and versions of `device`."""
        dev = self._call("Device", self._drv.Device, device)
        major, minor = dev.compute_capability()
        built = self._drv.get_version()  # the CUDA pycuda was compiled against: (major, minor, rev)
        driver = int(self._drv.get_driver_version())
        return DeviceInfo(
            index=device,
            name=str(dev.name()).strip(),
            major=int(major),
            minor=int(minor),
            runtime_version=f"{built[0]}.{built[1]}",
            driver_version=f"{driver // 1000}.{(driver % 1000) // 10}",
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
        flags = getattr(getattr(self._drv, "stream_flags", None), "NON_BLOCKING", 0)
        stream = self._call("Stream", self._drv.Stream, flags)
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

    # ---- CUDA graphs (pycuda >= 2022.2) ---------------------------------------------------
    def _require_graphs(self, stream: Any) -> None:
        if not hasattr(stream, "begin_capture"):
            raise BackendError(
                "CUDA-graph capture needs pycuda >= 2022.2 (Stream.begin_capture); upgrade pycuda "
                "or use the cuda-python API (pip install cuda-python)"
            )

    def graph_begin_capture(self, stream: int) -> None:
        """Start capturing the work enqueued on `stream` into a CUDA graph."""
        obj = self._streams[stream]
        self._require_graphs(obj)
        self._call("Stream.begin_capture", obj.begin_capture)

    def graph_end_capture(self, stream: int) -> int:
        """Stop capturing; instantiate the graph and return its executable handle."""
        graph = self._call("Stream.end_capture", self._streams[stream].end_capture)
        instance = self._call("Graph.instantiate", graph.instantiate)
        self._graphs[id(instance)] = instance
        return id(instance)

    def graph_launch(self, graph: int, stream: int) -> None:
        """Launch an instantiated graph on `stream`."""
        self._call("GraphExec.launch", self._graphs[graph].launch, self._streams[stream])

    def graph_destroy(self, graph: int) -> None:
        """Destroy an instantiated graph (pycuda frees it with the object)."""
        self._graphs.pop(graph, None)
