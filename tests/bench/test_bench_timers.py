"""StageRecorder (CpuTimer and the Timer protocol are tested in tests/runtime/test_timing.py)."""

from __future__ import annotations

import threading

import pytest

from mmedge.bench.timers import StageRecorder, Timer


class FakeTimer:
    """A deterministic Timer: every interval lasts 1 ms."""

    def start(self) -> None:
        """Nothing to do."""

    def stop(self) -> int:
        """Always 1 ms."""
        return 1_000_000


def test_fake_timer_satisfies_the_protocol() -> None:
    assert isinstance(FakeTimer(), Timer)


def test_stage_recorder_aggregates_per_stage() -> None:
    times = StageRecorder(timer_factory=FakeTimer)
    for i in range(4):
        times.next_iteration()
        with times.stage("preprocess"):
            pass
        times.record("image", 2_000_000 + i * 1_000_000)
        if i % 2 == 0:  # the audio modality is missing in half the calls
            times.record("audio", 5_000_000)
        times.record("head", 500_000)
        times.record("head", 500_000)  # recorded twice: accumulates
    assert len(times) == 4
    assert times.stages() == ["preprocess", "image", "audio", "head"]
    stats = times.summarize()
    assert stats["preprocess"].p50_ms == 1.0
    assert stats["image"].count == 4 and stats["image"].mean_ms == pytest.approx(3.5)
    assert stats["audio"].count == 2
    assert stats["head"].p50_ms == pytest.approx(1.0)
    times.clear()
    assert len(times) == 0 and times.summarize() == {}


def test_stage_that_raises_is_not_recorded() -> None:
    times = StageRecorder()
    times.next_iteration()
    with pytest.raises(KeyError), times.stage("broken"):
        raise KeyError("boom")
    assert times.samples("broken") == []


def test_concurrent_recording_into_explicit_iterations() -> None:
    times = StageRecorder()
    rows = [times.next_iteration() for _ in range(50)]

    def worker(row: int) -> None:
        for stage in ("text", "image", "audio"):
            times.record(stage, 1000 * (row + 1), iteration=row)

    threads = [threading.Thread(target=worker, args=(row,)) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for row, it in enumerate(times.iterations):
        assert it == {"text": 1000 * (row + 1), "image": 1000 * (row + 1), "audio": 1000 * (row + 1)}
    with pytest.raises(IndexError):
        times.record("text", 1, iteration=99)
    with pytest.raises(ValueError):
        times.record("text", -1)
