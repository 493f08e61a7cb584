"""The CPU executor's automatic choice: concurrent encoders only where measurement says they pay."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmedge.errors import BackendError
from mmedge.runtime.executors import AutoConcurrency, ThreadPoolEncoders, plan_lanes, work_key
from mmedge.runtime.pipeline import Pipeline
from mmedge.runtime.runner import Runner
from mmedge.specs import TensorSpec, embedding_name


def _decide(seq_ns: list[int], conc_ns: list[int], **kw: Any) -> bool | None:
    auto, key = AutoConcurrency(**{"trials": 4, **kw}), (("audio", "image"), 1)
    times = {False: iter(seq_ns), True: iter(conc_ns)}
    while key not in auto.decided:
        mode = auto.choose(key)
        auto.record(key, mode, next(times[mode]))
    return auto.decided[key]


def test_trials_alternate_starting_sequential_and_skip_warmup_calls():
    auto, key = AutoConcurrency(trials=2, skip=1), (("a", "b"), 1)
    modes = []
    for _ in range(6):
        modes.append(auto.choose(key))
        auto.record(key, modes[-1], 100)
    # S C C S: calls that come in pairs (warm after cold) give each mode both positions
    assert modes == [False, True, True, False, False, True]
    assert key in auto.decided  # after skip + trials calls of each mode


def test_concurrent_chosen_only_when_clearly_faster():
    slow_first = [10_000]  # the first call of each mode (lazy set-up) is not counted
    assert _decide(slow_first + [100] * 4, slow_first + [60] * 4, skip=1) is True
    assert _decide(slow_first + [100] * 4, slow_first + [180] * 4, skip=1) is False
    assert _decide(slow_first + [100] * 4, slow_first + [97] * 4, margin=0.95, skip=1) is False  # within noise
    assert _decide([100] + [100] * 4, [1] + [300] * 4, skip=1) is False  # a fast skipped call cannot decide it
    # concurrent must win by its best and its median call: load spikes in some trials cannot pick it
    assert _decide([0, 100, 900, 100, 800], [0, 180, 150, 170, 160], trials=4, skip=1) is False
    assert _decide([0, 100, 100, 100, 100], [0, 900, 60, 800, 700], trials=4, skip=1) is False  # one lucky call
    assert _decide([0, 100, 100, 900, 100], [0, 60, 900, 70, 65], trials=4, skip=1) is True  # spikes in both


def test_a_decision_is_measured_again_after_recheck_calls():
    runners = {m: _Echo(m) for m in ("image", "audio")}
    for r in runners.values():
        r.activate()
    auto = AutoConcurrency(trials=1, skip=0, recheck=3)
    ex = ThreadPoolEncoders(runners, ["image", "audio"], auto)
    feeds = {m: {"x": np.ones((1, 4), np.float32)} for m in runners}
    for _ in range(2):
        ex.encode(feeds, None)
    assert work_key(feeds) in auto.decided
    for _ in range(3):
        ex.encode(feeds, None)
    assert work_key(feeds) not in auto.decided  # trials again
    ex.close()


def test_decision_is_per_workload():
    auto = AutoConcurrency(trials=1, skip=0)
    small, big = (("a", "b"), 1), (("a", "b"), 8)
    for key, (seq, conc) in ((small, (10, 50)), (big, (100, 40))):
        for _ in range(2):
            mode = auto.choose(key)
            auto.record(key, mode, conc if mode else seq)
    assert auto.decided == {small: False, big: True}


class _Echo(Runner):
    """A runner returning its input rows as the embedding (records which thread ran it)."""

    def __init__(self, modality: str) -> None:
        spec = TensorSpec("x", "float32", ["batch", 4])
        super().__init__(modality, [spec], [TensorSpec(embedding_name(modality), "float32", ["batch", 4])])
        self.modality = modality

    def _activate(self) -> None: ...
    def _deactivate(self) -> None: ...

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {embedding_name(self.modality): np.asarray(feed["x"]) * 2}


def test_thread_pool_uses_the_decision_and_forced_modes():
    runners = {m: _Echo(m) for m in ("image", "audio")}
    for r in runners.values():
        r.activate()
    auto = AutoConcurrency(trials=1, skip=0)
    ex = ThreadPoolEncoders(runners, ["image", "audio"], auto)
    feeds = {m: {"x": np.full((2, 4), i, np.float32)} for i, m in enumerate(runners)}
    assert work_key(feeds) == (("audio", "image"), 2)
    for _ in range(2):
        out = ex.encode(feeds, None)
        np.testing.assert_array_equal(out["audio"][0], feeds["audio"]["x"] * 2)
    assert work_key(feeds) in auto.decided
    forced = ex.encode(feeds, True)  # a fixed mode neither consults nor feeds the chooser
    np.testing.assert_array_equal(forced["image"][0], feeds["image"]["x"] * 2)
    one = ex.encode({"image": feeds["image"]}, None)  # one encoder: nothing to decide
    assert set(one) == {"image"} and len(auto.decided) == 1
    ex.close()
    with pytest.raises(BackendError, match="closed"):
        ex.encode(feeds, None)


def test_auto_pipeline_gives_sequential_results(tiny_bundle_pristine: Path):
    from mmedge.data.digits import load_digits

    samples = load_digits("test", limit=6).samples
    with Pipeline.from_bundle(tiny_bundle_pristine, threads=1) as pipe:
        assert pipe.concurrent == "auto"
        batch = pipe.preprocess(samples)
        ref = pipe.run_batch(batch, concurrent=False)
        for _ in range(20):  # past the trials (2 skipped + 7 counted per mode): the executor has decided
            np.testing.assert_allclose(pipe.run_batch(batch), ref, atol=1e-6)
        assert isinstance(pipe.executor, ThreadPoolEncoders) and pipe.executor.auto.decided
    with pytest.raises(BackendError, match="concurrent must be True, False or 'auto'"):
        Pipeline.from_bundle(tiny_bundle_pristine, concurrent="yes")


def test_lanes_pack_the_longest_encoder_alone():
    costs = {"text": 5.0, "image": 3.0, "audio": 2.0}
    assert plan_lanes(costs, 2) == [["text"], ["image", "audio"]]
    assert plan_lanes(costs, 3) == [["text"], ["image"], ["audio"]]
    assert plan_lanes(costs, 8) == [["text"], ["image"], ["audio"]]
    assert plan_lanes(costs, 1) == [["text", "image", "audio"]]
    assert plan_lanes({"text": 1.0, "image": 9.0, "audio": 1.0}, 2) == [["image"], ["text", "audio"]]


class _Sleepy(_Echo):
    """An echo that takes `ms` and records the thread it ran on."""

    def __init__(self, modality: str, ms: float, threads: dict[str, str]) -> None:
        super().__init__(modality)
        self.ms, self.threads = ms, threads

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import threading
        import time

        time.sleep(self.ms / 1e3)
        self.threads[self.modality] = threading.current_thread().name
        return super()._infer(feed)


def test_concurrent_calls_run_in_lanes_sized_by_measured_cost():
    threads: dict[str, str] = {}
    runners = {m: _Sleepy(m, ms, threads) for m, ms in (("text", 30), ("image", 12), ("audio", 6))}
    for r in runners.values():
        r.activate()
    ex = ThreadPoolEncoders(runners, list(runners), lanes=2)
    feeds = {m: {"x": np.full((1, 4), i, np.float32)} for i, m in enumerate(runners)}
    ex.encode(feeds, False)  # measures each encoder's time
    out = ex.encode(feeds, True)
    for i, m in enumerate(runners):
        np.testing.assert_array_equal(out[m][0], np.full((1, 4), 2 * i, np.float32))
    assert threads["text"] == "MainThread"  # the longest lane runs in the calling thread
    assert threads["image"] == threads["audio"] != "MainThread"  # the two short ones share one pool thread
    ex.close()


class _PerToken(_Sleepy):
    """Sleeps `ms` per column of its input (a text encoder's time follows its token count)."""

    def __init__(self, modality: str, ms: float, threads: dict[str, str]) -> None:
        super().__init__(modality, ms, threads)
        self.inputs = [TensorSpec("x", "float32", ["batch", "seq"])]

    def _infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import threading
        import time

        time.sleep(self.ms * feed["x"].shape[1] / 1e3)
        self.threads[self.modality] = threading.current_thread().name
        return {embedding_name(self.modality): np.zeros((feed["x"].shape[0], 4), np.float32)}


def test_lanes_follow_the_cost_of_this_input_shape_not_the_last_call():
    threads: dict[str, str] = {}
    runners = {"text": _PerToken("text", 2, threads), "image": _Sleepy("image", 12, threads),
               "audio": _Sleepy("audio", 6, threads)}
    for r in runners.values():
        r.activate()
    ex = ThreadPoolEncoders(runners, list(runners), lanes=2)
    long_feeds = {m: {"x": np.zeros((1, 12 if m == "text" else 4), np.float32)} for m in runners}
    short_feeds = {**long_feeds, "text": {"x": np.zeros((1, 2), np.float32)}}
    ex.encode(short_feeds, False)  # text at 2 tokens: 4 ms
    ex.encode(long_feeds, False)  # text at 12 tokens: 24 ms (the last call)
    ex.encode(short_feeds, True)
    # the short text (4 ms) shares a lane with audio (6 ms) while image (12 ms) runs alone; packed by the last
    # call's 24 ms, text would run alone and image + audio (18 ms) would set the time
    assert threads["image"] == "MainThread" and threads["text"] == threads["audio"] != "MainThread"
    ex.close()
