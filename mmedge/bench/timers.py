"""Per-stage time collection for the harness, on the shared timers of `mmedge.runtime.timing`.

`Timer` and `CpuTimer` live in `mmedge.runtime.timing` (the runtime uses them too) and are
re-exported here; a GPU timer (`mmedge.runtime.cuda.timer.CudaEventTimer`) implements the
same `Timer` protocol.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping

from mmedge.bench.stats import LatencyStats, summarize
from mmedge.runtime.timing import CpuTimer, Timer

__all__ = ["CpuTimer", "StageRecorder", "Timer"]


class StageRecorder:
    """Per-iteration stage durations (stage name -> ns), aggregated into per-stage LatencyStats.

    Usage: call `next_iteration()` once per pipeline call, then `record(stage, ns)` or
    `with times.stage("image"):` for each stage. Recording is thread-safe, so encoders
    running concurrently can record into the same iteration. When several pipeline calls are
    in flight at once, pass the index `next_iteration()` returned as `iteration=` so each
    stage lands in its own call's row. A stage recorded twice in one iteration accumulates
    (sum). Stages absent from an iteration (a missing modality) are summarized over the
    iterations where they appear.
    """

    def __init__(self, timer_factory: Callable[[], Timer] = CpuTimer) -> None:
        self._timer_factory = timer_factory
        self._iterations: list[dict[str, int]] = []
        self._order: dict[str, None] = {}
        self._lock = threading.Lock()

    def next_iteration(self) -> int:
        """Start a new iteration and return its index (for `record(..., iteration=)`)."""
        with self._lock:
            self._iterations.append({})
            return len(self._iterations) - 1

    def record(self, stage: str, ns: int, iteration: int | None = None) -> None:
        """Add `ns` to `stage` in `iteration` (default: the latest one, started if none exists)."""
        if ns < 0:
            raise ValueError(f"stage {stage!r} duration must be >= 0 ns, got {ns}")
        with self._lock:
            if iteration is None:
                if not self._iterations:
                    self._iterations.append({})
                iteration = len(self._iterations) - 1
            elif not 0 <= iteration < len(self._iterations):
                raise IndexError(f"iteration {iteration} does not exist ({len(self._iterations)} started)")
            current = self._iterations[iteration]
            current[stage] = current.get(stage, 0) + int(ns)
            self._order.setdefault(stage, None)

    def add_iteration(self, times: Mapping[str, int]) -> None:
        """Append one complete iteration's stage -> ns mapping."""
        with self._lock:
            self._iterations.append({k: int(v) for k, v in times.items()})
            for k in times:
                self._order.setdefault(k, None)

    @contextlib.contextmanager
    def stage(self, name: str, iteration: int | None = None) -> Iterator[None]:
        """Time the enclosed block with a fresh timer and record it under `name` (only if it succeeds)."""
        timer = self._timer_factory()
        timer.start()
        yield
        self.record(name, timer.stop(), iteration)

    @property
    def iterations(self) -> list[dict[str, int]]:
        """A copy of every iteration's stage -> ns mapping."""
        with self._lock:
            return [dict(it) for it in self._iterations]

    def stages(self) -> list[str]:
        """Stage names in the order they were first recorded."""
        with self._lock:
            return list(self._order)

    def samples(self, stage: str) -> list[int]:
        """Durations (ns) of `stage` in every iteration that recorded it."""
        with self._lock:
            return [it[stage] for it in self._iterations if stage in it]

    def clear(self) -> None:
        """Forget everything recorded (e.g. after warm-up)."""
        with self._lock:
            self._iterations.clear()
            self._order.clear()

    def summarize(self, batch: int = 1) -> dict[str, LatencyStats]:
        """Per-stage LatencyStats, in first-recorded order."""
        out: dict[str, LatencyStats] = {}
        for name in self.stages():
            values = self.samples(name)
            if values:
                out[name] = summarize(values, batch)
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._iterations)


