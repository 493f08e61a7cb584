"""A stand-in for the CUDA calls mmedge's TensorRT runner and executor make, with real stream semantics.

Streams are scheduled adversarially, as a GPU may: copies and event records run as soon as they
reach the front of their stream, but engine executions (and everything queued behind them) run only
when the stream is synchronized or another stream waits on an event recorded after them. So a
missing `stream_wait_event` makes the head read an encoder's output before it is computed, and a
missing `stream_synchronize` leaves host outputs stale: wrong results, exactly as on a GPU.
Device memory is bounds-checked per allocation, async copies read their host source when they
run (pinned-memory semantics), events carry timestamps only once they have completed, and
stream capture records work into a replayable graph.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmedge.errors import BackendError
from mmedge.runtime.cuda.contract import CudaApi, DeviceInfo

Op = Callable[[], None]


@dataclass
class _Event:
    stream: int | None = None
    done: bool = False
    stamp: float = 0.0


@dataclass
class _Stream:
    pending: list[tuple[str, Op]] = field(default_factory=list)


class StandinCuda:
    """CudaApi over host memory; `trace` lists (stream, what) in the order work ran."""

    name = "standin"

    def __init__(self, gpu: str = "NVIDIA StandIn", capability: tuple[int, int] = (9, 0), devices: int = 1) -> None:
        self.gpu, self.capability, self.devices = gpu, capability, devices
        self.device = 0
        self.trace: list[tuple[int, str]] = []
        self._mem: dict[int, np.ndarray] = {}
        self._streams: dict[int, _Stream] = {}
        self._events: dict[int, _Event] = {}
        self._graphs: dict[int, list[tuple[str, Op]]] = {}
        self._capturing: dict[int, list[tuple[str, Op]]] = {}
        self._next = 0x10000000
        self._ids = itertools.count(1)  # handles are never reused while the process lives
        self._lock = threading.RLock()

    # ---- device ---------------------------------------------------------------------------
    def device_count(self) -> int:
        """Number of visible stand-in devices."""
        return self.devices

    def device_info(self, device: int = 0) -> DeviceInfo:
        """A fixed description of the stand-in GPU."""
        return DeviceInfo(device, self.gpu, *self.capability, runtime_version="12.6", driver_version="12.8",
                          sm_count=132, total_memory=141 << 30)

    def set_device(self, device: int) -> None:
        """Select `device` (BackendError past the visible count, like cudaErrorInvalidDevice)."""
        if not 0 <= device < self.devices:
            raise BackendError(f"CUDA call cudaSetDevice failed: cudaErrorInvalidDevice ({device})")
        self.device = device

    # ---- memory ---------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        """A new zeroed allocation; its pointer."""
        with self._lock:
            ptr = self._next
            self._next += (max(nbytes, 1) + 0xFFF) & ~0xFFF
            self._mem[ptr] = np.zeros(max(nbytes, 1), dtype=np.uint8)
            return ptr

    def free(self, ptr: int) -> None:
        """Release an allocation."""
        with self._lock:
            if self._mem.pop(ptr, None) is None:
                raise BackendError("CUDA call cudaFree failed: cudaErrorInvalidValue")

    def host_alloc(self, nbytes: int) -> np.ndarray:
        """'Pinned' host memory (plain numpy here)."""
        return np.zeros(max(nbytes, 1), dtype=np.uint8)[:nbytes]

    def host_free(self, array: np.ndarray) -> None:
        """Nothing to release for host memory."""

    def device_view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The bytes [ptr, ptr + nbytes) of one allocation (BackendError when out of bounds)."""
        with self._lock:
            for base, block in self._mem.items():
                if base <= ptr and ptr + nbytes <= base + block.size:
                    return block[ptr - base : ptr - base + nbytes]
        raise BackendError(f"illegal address: {nbytes} bytes at {ptr:#x} are not inside one allocation")

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: int) -> None:
        """Queue a host→device copy (the host bytes are read when it runs)."""
        def op() -> None:
            self.device_view(dst, nbytes)[:] = src.reshape(-1).view(np.uint8)[:nbytes]
        self.enqueue(stream, "htod", op)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: int) -> None:
        """Queue a device→host copy."""
        def op() -> None:
            dst.reshape(-1).view(np.uint8)[:nbytes] = self.device_view(src, nbytes)
        self.enqueue(stream, "dtoh", op)

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Queue a device→device copy."""
        def op() -> None:
            self.device_view(dst, nbytes)[:] = self.device_view(src, nbytes)
        self.enqueue(stream, "dtod", op)

    # ---- streams, events, graphs ----------------------------------------------------------
    def stream_create(self) -> int:
        """A new stream."""
        with self._lock:
            handle = 0x5000 + next(self._ids)
            self._streams[handle] = _Stream()
            return handle

    def enqueue(self, stream: int, what: str, op: Op) -> None:
        """Queue `op` on `stream` (or into the graph being captured on it)."""
        with self._lock:
            if stream not in self._streams:
                raise BackendError(f"CUDA: invalid resource handle (stream {stream:#x})")
            target = self._capturing.get(stream)
            if target is not None:
                target.append((what, op))
                return
            self._streams[stream].pending.append((what, op))
            self._run_until(stream, stop=lambda: self._streams[stream].pending[0][0].endswith("execute"))

    def _run_until(self, stream: int, stop: Callable[[], bool] | None = None) -> None:
        with self._lock:
            pending = self._streams[stream].pending
            while pending and not (stop is not None and stop()):
                what, op = pending[0]
                op()
                pending.pop(0)
                self.trace.append((stream, what))

    def stream_synchronize(self, stream: int) -> None:
        """Run everything queued on `stream`."""
        self._run_until(stream)

    def stream_destroy(self, stream: int) -> None:
        """Forget a stream (its pending work is dropped, as destroying a busy stream would be a bug)."""
        with self._lock:
            self._streams.pop(stream, None)

    def stream_wait_event(self, stream: int, event: int) -> None:
        """Later work on `stream` first completes the work before `event` on the event's stream."""
        ev = self._events[event]

        def wait() -> None:
            if ev.stream is not None and not ev.done:
                self._run_until(ev.stream, stop=lambda: ev.done)
        self.enqueue(stream, "wait", wait)

    def event_create(self) -> int:
        """A new event."""
        with self._lock:
            handle = 0x9000000 + next(self._ids)
            self._events[handle] = _Event()
            return handle

    def event_record(self, event: int, stream: int) -> None:
        """Queue the event on `stream`; it completes (and gets its timestamp) when reached."""
        ev = self._events[event]
        ev.stream, ev.done = stream, False

        def record() -> None:
            ev.done, ev.stamp = True, time.perf_counter()
        self.enqueue(stream, f"event:{event:#x}", record)

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two completed events (BackendError if either has not completed)."""
        a, b = self._events[start], self._events[end]
        if not (a.done and b.done):
            raise BackendError("CUDA call cudaEventElapsedTime failed: cudaErrorNotReady")
        return (b.stamp - a.stamp) * 1e3

    def event_destroy(self, event: int) -> None:
        """Forget an event."""
        self._events.pop(event, None)

    def graph_begin_capture(self, stream: int) -> None:
        """Record the work queued on `stream` into a graph instead of queueing it."""
        self._capturing[stream] = []

    def graph_end_capture(self, stream: int) -> int:
        """Stop capturing; the graph's handle."""
        with self._lock:
            handle = 0xA000000 + next(self._ids)
            self._graphs[handle] = self._capturing.pop(stream)
            return handle

    def graph_launch(self, graph: int, stream: int) -> None:
        """Queue the captured work on `stream`."""
        for what, op in self._graphs[graph]:
            self.enqueue(stream, f"graph:{what}", op)

    def graph_destroy(self, graph: int) -> None:
        """Forget a graph."""
        self._graphs.pop(graph, None)


def _conforms(api: CudaApi) -> CudaApi:
    """Static proof (mypy) and run-time check that the stand-in implements the whole CUDA contract."""
    return api


_conforms(StandinCuda())
