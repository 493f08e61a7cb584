"""CudaEventTimer over the CUDA stand-in: events complete only when the work before them has run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from standin_cuda import StandinCuda

from mmedge.errors import BackendError
from mmedge.runtime.backends.tensorrt.io_types import StageTimes
from mmedge.runtime.cuda.timer import CudaEventTimer
from mmedge.runtime.timing import Timer


@pytest.fixture
def cuda() -> StandinCuda:
    return StandinCuda()


@pytest.fixture
def stamps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Fake event timestamps (seconds): each completing event takes the next value, in order."""
    values: list[float] = []
    reads: Iterator[float] = iter(values)
    monkeypatch.setattr(time, "perf_counter", lambda: next(reads))
    return values


def _work(cuda: StandinCuda, stream: int, ran: list[str], name: str = "execute") -> None:
    """Queue kernel-like work: the stand-in holds it (and what follows) until the stream is waited on."""
    cuda.enqueue(stream, name, lambda: ran.append(name))


def test_is_a_timer(cuda: StandinCuda) -> None:
    assert isinstance(CudaEventTimer(cuda, cuda.stream_create()), Timer)


def test_stop_or_mark_before_start_raises(cuda: StandinCuda) -> None:
    timer = CudaEventTimer(cuda, cuda.stream_create(), ("start", "mid", "end"))
    with pytest.raises(RuntimeError, match="before start"):
        timer.stop()
    with pytest.raises(RuntimeError, match="before start"):
        timer.mark("mid")
    with pytest.raises(ValueError):
        timer.mark("start")  # the start mark is recorded by start() only


def test_stop_waits_for_the_work_and_returns_ns(cuda: StandinCuda, stamps: list[float]) -> None:
    stream, ran = cuda.stream_create(), []
    timer = CudaEventTimer(cuda, stream)
    stamps.extend([10.0, 10.25])
    timer.start()
    _work(cuda, stream, ran)
    assert ran == []  # still queued: an unsynchronized stop() would read an unfinished event
    assert timer.stop() == 250_000_000 and timer.elapsed_ns == 250_000_000
    assert ran == ["execute"]


def test_intervals_between_marks_need_one_synchronize(
    cuda: StandinCuda, stamps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, ran, syncs = cuda.stream_create(), [], []
    real_sync = cuda.stream_synchronize
    monkeypatch.setattr(cuda, "stream_synchronize", lambda s: (syncs.append(s), real_sync(s)))
    timer = CudaEventTimer(cuda, stream, ("start", "mid", "end"))
    stamps.extend([0.0, 0.002, 0.005])
    timer.start()
    _work(cuda, stream, ran, "a.execute")
    timer.mark("mid")
    _work(cuda, stream, ran, "b.execute")
    timer.mark("end")
    with pytest.raises(BackendError, match="NotReady"):  # reading never synchronizes on its own
        timer.interval_ms("start", "end")
    timer.synchronize()
    assert timer.interval_ns("start", "mid") == 2_000_000
    assert timer.interval_ns("mid", "end") == 3_000_000
    assert timer.interval_ms("start", "end") == pytest.approx(5.0)
    assert syncs == [stream] and ran == ["a.execute", "b.execute"]


def test_start_forgets_the_previous_interval(cuda: StandinCuda, stamps: list[float]) -> None:
    stream = cuda.stream_create()
    timer = CudaEventTimer(cuda, stream, ("start", "mid", "end"))
    stamps.extend([0.0, 0.001, 0.003, 1.0])
    timer.start()
    timer.mark("mid")
    assert timer.stop() == 3_000_000
    handles = [timer.event(m) for m in timer.marks]
    timer.start()
    assert timer.elapsed_ns is None
    with pytest.raises(RuntimeError, match="not recorded"):  # not the stale end of the last interval
        timer.interval_ms("start", "end")
    assert [timer.event(m) for m in timer.marks] == handles  # events are re-recorded, not re-created


def test_elapsed_is_non_negative_and_follows_the_clock(cuda: StandinCuda, stamps: list[float]) -> None:
    timer = CudaEventTimer(cuda, cuda.stream_create())
    stamps.extend([1.0, 1.0, 2.0, 2.001, 3.0, 3.5])
    got = []
    for _ in range(3):
        timer.start()
        got.append(timer.stop())
    assert got == [0, 1_000_000, 500_000_000]


def test_context_manager_times_the_block(cuda: StandinCuda, stamps: list[float]) -> None:
    stream, ran = cuda.stream_create(), []
    stamps.extend([0.0, 0.004])
    with CudaEventTimer(cuda, stream) as timer:
        _work(cuda, stream, ran)
    assert timer.elapsed_ns == 4_000_000 and ran == ["execute"]


def test_close_destroys_every_event(cuda: StandinCuda) -> None:
    before = set(cuda._events)
    timer = CudaEventTimer(cuda, cuda.stream_create(), ("a", "b", "c"))
    assert len(set(cuda._events) - before) == 3
    timer.close()
    assert set(cuda._events) == before
    with pytest.raises(KeyError):
        timer.event("a")


def test_failed_creation_releases_the_events_made(cuda: StandinCuda, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real_create = cuda.event_create

    def create() -> int:
        if made:
            raise BackendError("CUDA call cudaEventCreate failed: cudaErrorMemoryAllocation")
        made.append(real_create())
        return made[-1]

    monkeypatch.setattr(cuda, "event_create", create)
    with pytest.raises(BackendError):
        CudaEventTimer(cuda, cuda.stream_create())
    assert made and made[0] not in cuda._events


@pytest.mark.parametrize("marks", [("only",), ("a", "b", "a")])
def test_marks_must_be_two_or_more_and_distinct(cuda: StandinCuda, marks: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        CudaEventTimer(cuda, cuda.stream_create(), marks)


def test_runner_stage_times_come_from_the_right_marks(cuda: StandinCuda, stamps: list[float]) -> None:
    stream = cuda.stream_create()
    timer = CudaEventTimer(cuda, stream, ("start", "h2d_done", "compute_done", "end"))
    stamps.extend([0.0, 0.001, 0.004, 0.010])
    timer.start()
    timer.mark("h2d_done")
    timer.mark("compute_done")
    timer.stop()
    times = StageTimes.from_marks(timer, enqueue_ms=0.5)
    want = {"h2d_ms": 1.0, "compute_ms": 3.0, "d2h_ms": 6.0, "gpu_ms": 10.0, "enqueue_ms": 0.5}
    assert asdict(times) == pytest.approx(want)
