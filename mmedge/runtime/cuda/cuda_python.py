"""CudaApi over cuda-python (`cuda.bindings.runtime`): every call's error code is checked.

cuda-python returns `(cudaError_t, *results)` from every call instead of raising; `_check`
turns anything but cudaSuccess into a BackendError naming the call and the CUDA error.
The runtime API uses the device's primary context, the same one TensorRT uses, created on
the first call that needs it (never at import). `set_device` picks the device for every thread
that calls in (cudaSetDevice is per thread, so each thread applies it before its first call).
Handles of cuda-python objects become ints through `cuda.bindings.utils.get_cuda_native_handle`
(cuda-python >= 12.9.1; `int(obj)` is deprecated there), with `int()` only for older releases.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.cuda.contract import DeviceInfo, version_string

log = logging.getLogger(__name__)


def _runtime() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise MissingDependencyError("cuda-python", "the cuda-python CUDA API", "cuda-python") from exc
    return cudart


def _native_handle_getter() -> Any:
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:  # cuda-python < 12.9.1: int(obj) is the documented way there
        return None
    return get_cuda_native_handle


def native_handle(obj: Any, getter: Any = None) -> int:
    """The address a cuda-python object (stream, event, graph) wraps, as a plain int."""
    if isinstance(obj, int):
        return obj  # pointers (cudaMalloc, cudaMallocHost) already come back as ints
    if getter is not None:
        return int(getter(obj))
    return int(obj)


def _error_name(cudart: Any, err: Any) -> str:
    try:
        status, raw = cudart.cudaGetErrorName(err)
        if status == cudart.cudaError_t.cudaSuccess:
            return raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:  # pragma: no cover - naming the error must never hide it
        pass
    return str(err)


class CudaPythonApi:
    """CudaApi implementation over cuda-python's runtime bindings."""

    name = "cuda-python"

    def __init__(self) -> None:
        self._rt = _runtime()
        self._handle = _native_handle_getter()
        self._pinned: dict[int, int] = {}  # host pointer -> bytes
        self._lock = threading.Lock()
        self._device: int | None = None  # None: CUDA's default (device 0) until set_device
        self._local = threading.local()

    def _int(self, obj: Any) -> int:
        return native_handle(obj, self._handle)

    def _on_device(self) -> None:
        """Apply `set_device` to the calling thread once (cudaSetDevice is per thread)."""
        if self._device is not None and getattr(self._local, "device", None) != self._device:
            self._check(self._rt.cudaSetDevice(self._device), "cudaSetDevice")
            self._local.device = self._device

    # ---- error handling -------------------------------------------------------------------
    def _check(self, result: Any, call: str) -> Any:
        """Raise BackendError unless `result[0]` is cudaSuccess; return the remaining value(s)."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self._rt.cudaError_t.cudaSuccess:
            name = _error_name(self._rt, err)
            hint = ""
            if name in ("cudaErrorInsufficientDriver", "cudaErrorNoDevice"):
                import cuda.bindings

                hint = (
                    f" (no usable NVIDIA GPU/driver for cuda-python {cuda.bindings.__version__}; a driver "
                    "older than this cuda-python's CUDA major also gives this: install a matching "
                    "cuda-python, e.g. pip install 'cuda-python<13' for CUDA 12 drivers)"
                )
            raise BackendError(f"CUDA call {call} failed: {name}{hint}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    # ---- device ---------------------------------------------------------------------------
    def device_count(self) -> int:
        """Number of visible CUDA devices (raises BackendError when CUDA is unusable)."""
        return int(self._check(self._rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def set_device(self, device: int) -> None:
        """Make `device` the one later calls use, on this thread now and on others at their next call."""
        self._check(self._rt.cudaSetDevice(device), "cudaSetDevice")
        self._device = device
        self._local.device = device

    def device_info(self, device: int = 0) -> DeviceInfo:
        """Name, compute capability, size and versions of `device`."""
        prop = self._check(self._rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        raw_name = prop.name
        name = raw_name.split(b"\0", 1)[0].decode() if isinstance(raw_name, bytes) else str(raw_name)
        runtime = int(self._check(self._rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
        driver = int(self._check(self._rt.cudaDriverGetVersion(), "cudaDriverGetVersion"))
        return DeviceInfo(
            index=device,
            name=name.strip(),
            major=int(prop.major),
            minor=int(prop.minor),
            runtime_version=version_string(runtime),
            driver_version=version_string(driver),
            sm_count=int(prop.multiProcessorCount),
            total_memory=int(prop.totalGlobalMem),
        )

    # ---- memory ---------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        """Allocate device memory; return the device pointer."""
        self._on_device()
        return self._int(self._check(self._rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        """Free device memory from `malloc`."""
        self._check(self._rt.cudaFree(ptr), "cudaFree")

    def host_alloc(self, nbytes: int) -> np.ndarray:
        """Allocate pinned (page-locked) host memory as a flat uint8 numpy array."""
        size = max(nbytes, 1)
        self._on_device()
        ptr = self._int(self._check(self._rt.cudaMallocHost(size), "cudaMallocHost"))
        with self._lock:
            self._pinned[ptr] = size
        array: np.ndarray = np.ctypeslib.as_array((ctypes.c_ubyte * size).from_address(ptr))
        return array[:nbytes]

    def host_free(self, array: np.ndarray) -> None:
        """Free a pinned array from `host_alloc`."""
        ptr = int(array.ctypes.data)
        with self._lock:
            if self._pinned.pop(ptr, None) is None:
                raise BackendError("host_free: this array was not allocated by host_alloc (or was freed)")
        self._check(self._rt.cudaFreeHost(ptr), "cudaFreeHost")

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: int) -> None:
        """Copy the first `nbytes` of pinned `src` to device `dst` on `stream`."""
        self._on_device()
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(
            self._rt.cudaMemcpyAsync(dst, int(src.ctypes.data), nbytes, kind, stream),
            "cudaMemcpyAsync(HostToDevice)",
        )

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` from device `src` into pinned `dst` on `stream`."""
        self._on_device()
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            self._rt.cudaMemcpyAsync(int(dst.ctypes.data), src, nbytes, kind, stream),
            "cudaMemcpyAsync(DeviceToHost)",
        )

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Copy `nbytes` between device buffers on `stream`."""
        self._on_device()
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._check(
            self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(DeviceToDevice)"
        )

    # ---- streams and events ---------------------------------------------------------------
    def stream_create(self) -> int:
        """Create a non-blocking stream; return its cudaStream_t value."""
        self._on_device()
        stream = self._check(
            self._rt.cudaStreamCreateWithFlags(self._rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags"
        )
        return self._int(stream)

    def stream_synchronize(self, stream: int) -> None:
        """Block until all work on `stream` is done."""
        self._check(self._rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream from `stream_create`."""
        self._check(self._rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def stream_wait_event(self, stream: int, event: int) -> None:
        """Make later work on `stream` wait for `event`."""
        self._check(self._rt.cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent")

    def event_create(self) -> int:
        """Create a timing event."""
        self._on_device()
        return self._int(self._check(self._rt.cudaEventCreate(), "cudaEventCreate"))

    def event_record(self, event: int, stream: int) -> None:
        """Record `event` on `stream`."""
        self._check(self._rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two completed events."""
        return float(self._check(self._rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: int) -> None:
        """Destroy an event from `event_create`."""
        self._check(self._rt.cudaEventDestroy(event), "cudaEventDestroy")

    # ---- CUDA graphs ----------------------------------------------------------------------
    def graph_begin_capture(self, stream: int) -> None:
        """Start capturing the work enqueued on `stream` into a CUDA graph."""
        self._on_device()
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def graph_end_capture(self, stream: int) -> int:
        """Stop capturing; instantiate the graph and return its executable handle."""
        graph = self._check(self._rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        try:
            graph_exec = self._check(self._rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            self._check(self._rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
        return self._int(graph_exec)

    def graph_launch(self, graph: int, stream: int) -> None:
        """Launch an instantiated graph on `stream`."""
        self._on_device()
        self._check(self._rt.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: int) -> None:
        """Destroy an instantiated graph."""
        self._check(self._rt.cudaGraphExecDestroy(graph), "cudaGraphExecDestroy")
