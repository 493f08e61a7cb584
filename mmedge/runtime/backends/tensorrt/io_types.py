"""Plain data types of the TensorRT runner: device tensors, stage timings, pinned/device buffers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmedge.errors import BackendError
from mmedge.runtime.cuda.contract import CudaApi
from mmedge.runtime.cuda.timer import CudaEventTimer

if TYPE_CHECKING:
    import tensorrt as trt

# The runner's per-call timing marks, in stream order: H2D start, after H2D, after compute, after D2H.
TIMING_MARKS = ("start", "h2d_done", "compute_done", "end")

@dataclass(frozen=True)
class DeviceTensor:
    """A tensor already on the GPU (e.g. an encoder's output feeding the fusion head)."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class StageTimes:
    """One call's timing: GPU stages from CUDA events, enqueue from the host clock (ms)."""

    h2d_ms: float
    compute_ms: float
    d2h_ms: float
    gpu_ms: float  # first H2D start to last D2H end
    enqueue_ms: float  # host time spent issuing the work

    @classmethod
    def from_marks(cls, timer: CudaEventTimer, enqueue_ms: float) -> StageTimes:
        """Stage times from a completed timer with marks start, h2d_done, compute_done, end."""
        return cls(
            h2d_ms=timer.interval_ms("start", "h2d_done"),
            compute_ms=timer.interval_ms("h2d_done", "compute_done"),
            d2h_ms=timer.interval_ms("compute_done", "end"),
            gpu_ms=timer.interval_ms("start", "end"),
            enqueue_ms=enqueue_ms,
        )

    def to_json(self) -> dict[str, float]:
        """Plain dict for reports."""
        return {k: round(v, 4) for k, v in asdict(self).items()}


class IOBuffer:
    """A pinned host buffer and a device buffer for one I/O tensor, sized for the profile max."""

    def __init__(self, name: str, dtype: np.dtype, max_shape: tuple[int, ...], cuda: CudaApi) -> None:
        self.name, self.dtype, self.max_shape = name, dtype, max_shape
        self.capacity = int(np.prod(max_shape, dtype=np.int64)) * dtype.itemsize
        self.device = cuda.malloc(self.capacity)
        try:
            self.host = cuda.host_alloc(self.capacity)
        except BaseException:
            cuda.free(self.device)
            raise

    def view_bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes an array of `shape` takes in this buffer's dtype."""
        return int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first elements of the pinned buffer as an array of `shape` (BackendError past the capacity)."""
        nbytes = self.view_bytes(shape)
        if nbytes > self.capacity:
            raise BackendError(f"tensor '{self.name}' of shape {shape} needs {nbytes} bytes; "
                               f"its buffer holds {self.capacity}")
        return self.host[:nbytes].view(self.dtype).reshape(shape)


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints."""
    return tuple(int(dims[i]) for i in range(len(dims)))
