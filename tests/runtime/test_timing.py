"""The shared Timer protocol and CpuTimer, on a fake clock (no timed tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mmedge.runtime.timing import CpuTimer, Timer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fake `time.perf_counter_ns`: each read returns the next value of the list, in order."""
    ticks: list[int] = []
    reads: Iterator[int] = iter(ticks)
    monkeypatch.setattr(time, "perf_counter_ns", lambda: next(reads))
    return ticks


def test_cpu_timer_is_a_timer() -> None:
    assert isinstance(CpuTimer(), Timer)


def test_stop_before_start_raises(clock: list[int]) -> None:
    clock.extend([100])
    timer = CpuTimer()
    with pytest.raises(RuntimeError, match="before start"):
        timer.stop()
    assert timer.elapsed_ns is None


def test_stop_measures_from_start_to_stop(clock: list[int]) -> None:
    clock.extend([1_000, 4_500])
    timer = CpuTimer()
    timer.start()
    assert timer.stop() == 3_500 and timer.elapsed_ns == 3_500


def test_stop_twice_raises(clock: list[int]) -> None:
    clock.extend([0, 10, 20])
    timer = CpuTimer()
    timer.start()
    timer.stop()
    with pytest.raises(RuntimeError):  # an interval ends once; a second stop() has no start
        timer.stop()


def test_start_resets_the_interval(clock: list[int]) -> None:
    clock.extend([0, 10, 50, 70, 90, 1_000, 1_001])
    timer = CpuTimer()
    timer.start()
    assert timer.stop() == 10
    timer.start()
    timer.start()  # a restart forgets the first start
    assert timer.stop() == 20
    timer.start()
    assert timer.elapsed_ns is None  # a new interval forgets the last result
    assert timer.stop() == 1


def test_elapsed_is_non_negative_and_grows_with_the_clock(clock: list[int]) -> None:
    clock.extend([5, 5, 5, 6, 5, 900])
    timer = CpuTimer()
    got = []
    for _ in range(3):
        timer.start()
        got.append(timer.stop())
    assert got == [0, 1, 895] and all(ns >= 0 for ns in got)


def test_context_manager_times_the_block(clock: list[int]) -> None:
    clock.extend([40, 47])
    with CpuTimer() as timer:
        pass
    assert timer.elapsed_ns == 7


def test_bench_reexports_the_shared_timers() -> None:
    from mmedge.bench import timers

    assert timers.CpuTimer is CpuTimer and timers.Timer is Timer


def test_p50_ms_is_the_median_of_cpu_timer_samples(clock: list[int]) -> None:
    from mmedge.quantize.auto_precision import p50_ms

    calls = []
    # warm-up runs read no clock; then 3 timed runs lasting 1, 9 and 3 ms
    clock.extend([0, 1_000_000, 0, 9_000_000, 0, 3_000_000])
    assert p50_ms(lambda: calls.append(1), warmup=2, repeat=3) == pytest.approx(3.0)
    assert len(calls) == 5
    with pytest.raises(ValueError):
        p50_ms(lambda: None, warmup=0, repeat=0)
