"""The one timer abstraction of mmedge: a `Timer` protocol and the CPU clock behind it.

Torch-free and import-light so that the runtime, the benchmark harness and quantization can all
share it. A GPU timer plugs in by implementing `Timer` (see `mmedge.runtime.cuda.timer`):
`start()` marks the start, `stop()` returns the elapsed nanoseconds, synchronizing as it must.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Timer(Protocol):
    """Anything that can time one interval: `start()`, then `stop()` returns elapsed ns."""

    def start(self) -> None:
        """Mark the start of the interval (forgetting any earlier, unfinished one)."""
        ...

    def stop(self) -> int:
        """Mark the end of the interval and return its length in nanoseconds."""
        ...


class CpuTimer:
    """Wall-clock timer on `time.perf_counter_ns` (monotonic, highest resolution available)."""

    name = "cpu.perf_counter_ns"

    def __init__(self) -> None:
        self._t0: int | None = None
        self.elapsed_ns: int | None = None

    def start(self) -> None:
        """Mark the start of the interval."""
        self.elapsed_ns = None
        self._t0 = time.perf_counter_ns()

    def stop(self) -> int:
        """Return nanoseconds since `start()`; raises RuntimeError if it was never started."""
        t1 = time.perf_counter_ns()
        if self._t0 is None:
            raise RuntimeError("CpuTimer.stop() called before start()")
        self.elapsed_ns = t1 - self._t0
        self._t0 = None
        return self.elapsed_ns

    def __enter__(self) -> CpuTimer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
