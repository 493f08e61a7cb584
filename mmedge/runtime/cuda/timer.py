"""`CudaEventTimer`: the shared `Timer` protocol (mmedge.runtime.timing) over CUDA events.

One event per named mark, created once and re-recorded on every interval. `start()` records the
first mark, `mark(name)` the ones in between, `stop()` the last one and then synchronizes the
stream and returns the start-to-end time in ns. A caller that synchronizes the stream itself
(the TensorRT runner waits for its outputs anyway) records the last mark with `mark()` and then
reads any interval with `interval_ms`/`interval_ns`, which never synchronize.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmedge.runtime.cuda.contract import CudaApi

NS_PER_MS = 1_000_000


class CudaEventTimer:
    """Time intervals on one CUDA stream with events (see module docstring)."""

    name = "cuda.events"

    def __init__(self, cuda: CudaApi, stream: int, marks: Sequence[str] = ("start", "end")) -> None:
        if len(marks) < 2 or len(set(marks)) != len(marks):
            raise ValueError(f"CudaEventTimer needs at least two distinct marks, got {list(marks)}")
        self.cuda, self.stream, self.marks = cuda, stream, tuple(marks)
        self.elapsed_ns: int | None = None
        self._events: dict[str, int] = {}
        self._recorded: set[str] = set()
        try:
            for mark in self.marks:
                self._events[mark] = cuda.event_create()
        except BaseException:
            self.close()
            raise

    def event(self, mark: str) -> int:
        """The event handle of `mark` (e.g. for `stream_wait_event` on another stream)."""
        if mark not in self._events:
            raise KeyError(f"no mark {mark!r} (marks: {list(self.marks)}; closed timers have none)")
        return self._events[mark]

    def start(self) -> None:
        """Record the first mark on the stream, forgetting every mark of the previous interval."""
        self.elapsed_ns = None
        self._recorded.clear()
        self._record(self.marks[0])

    def mark(self, mark: str) -> None:
        """Record `mark` on the stream after the work queued so far (RuntimeError before `start()`)."""
        if mark == self.marks[0]:
            raise ValueError(f"{mark!r} is the start mark: call start()")
        if self.marks[0] not in self._recorded:
            raise RuntimeError(f"CudaEventTimer.mark({mark!r}) called before start()")
        self._record(mark)

    def stop(self) -> int:
        """Record the last mark, wait for the stream and return the start-to-end time in ns."""
        self.mark(self.marks[-1])
        self.synchronize()
        self.elapsed_ns = self.interval_ns(self.marks[0], self.marks[-1])
        return self.elapsed_ns

    def synchronize(self) -> None:
        """Block until the stream (and so every recorded mark) has completed."""
        self.cuda.stream_synchronize(self.stream)

    def interval_ms(self, first: str, last: str) -> float:
        """Milliseconds between two marks recorded since `start()` and completed; never synchronizes."""
        missing = [m for m in (first, last) if m not in self._recorded]
        if missing:
            raise RuntimeError(f"marks {missing} were not recorded since start() (recorded: {sorted(self._recorded)})")
        return self.cuda.event_elapsed_ms(self._events[first], self._events[last])

    def interval_ns(self, first: str, last: str) -> int:
        """`interval_ms` in whole nanoseconds."""
        return round(self.interval_ms(first, last) * NS_PER_MS)

    def close(self) -> None:
        """Destroy the events (every one is tried; the first failure is raised afterwards)."""
        events, self._events = self._events, {}
        self._recorded.clear()
        failure: BaseException | None = None
        for event in events.values():
            try:
                self.cuda.event_destroy(event)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _record(self, mark: str) -> None:
        self.cuda.event_record(self.event(mark), self.stream)
        self._recorded.add(mark)

    def __enter__(self) -> CudaEventTimer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
