"""Interleaved measurement: every configuration runs side by side, round-robin, in one loop.

A round visits every configuration once, starting from a different one each round, so machine
noise (other processes, thermal and frequency changes) hits all configurations alike. A visit runs
all of a configuration's phases back to back, as a deployed model runs call after call: the
previous configuration's weights and buffers have just evicted this one's from the CPU caches, so
each visit opens with one call that refills them, timed on its own (``after_switch``: the latency
of a model whose caches other work has cleared), before the phases that are timed warm. Timing
every call cold instead would charge each configuration for its neighbours, and the smaller its
weights (int8: a quarter of fp32's, inside a 32 MB L3 on the edge preset), the more of its steady
speed it would hide. The ``model`` and ``other`` phases swap places every other round, so neither
encoder mode is always measured in the same position. Phases per visit:

* ``switch``: `Pipeline.run_batch` in the headline mode right after another configuration ran
  (``after_switch``);
* ``model``: `Pipeline.run_batch` in the headline mode (model compute only) — the headline
  latency, plus ``fusion_head`` and ``encoders.<mode>`` from the pipeline's own stage timers;
* ``other``: `run_batch` in the other encoder mode, giving ``encoders.sequential`` and
  ``encoders.concurrent`` side by side (headline ``auto``, the pipeline's measured choice:
  sequential and concurrent on alternate rounds, so ``encoders.auto`` can be compared with both);
  per-encoder times ``encoder.<m>`` come from the sequential run, where encoders do not compete
  for cores;
* ``preprocess``: the preprocessor of each modality on the raw samples (``preprocess.<m>``);
* ``e2e``: `Pipeline.predict_batch` on raw samples (``end_to_end``, ``preprocess``,
  ``postprocess`` = softmax).

The clock of the timed phases is `LoopSettings.timer_factory` (CPU: perf_counter_ns), unless the
configuration's backend registered its own with `register_timer` (the hook for a CUDA-event
timer on GPU backends); stage times inside the pipeline use perf_counter_ns.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmedge.bench.report import AFTER_SWITCH, BenchConfig
from mmedge.bench.timers import CpuTimer, StageRecorder, Timer
from mmedge.progress import task, track

if TYPE_CHECKING:
    from mmedge.bench.workload import Workload
    from mmedge.data.preprocess import Preprocessor
    from mmedge.data.sample import Sample
    from mmedge.runtime.pipeline import BatchOutput, Pipeline

logger = logging.getLogger(__name__)

HEADLINE = "model"
SWITCH = "switch"  # the visit's first call, after another configuration: recorded as AFTER_SWITCH
PHASES: tuple[str, ...] = (SWITCH, HEADLINE, "other", "preprocess", "e2e")
ERROR_CHARS = 300
PRIME_BATCHES = 8
AUTO_SETTLE_CALLS = 200  # a workload is decided after 2 x (2 + 7) trial calls; this bounds odd cases
TIMER_FACTORIES: dict[str, Callable[[], Timer]] = {}


def register_timer(backend: str, factory: Callable[[], Timer]) -> None:
    """Use `factory` (e.g. a CUDA-event timer) to time configurations that run on `backend`."""
    TIMER_FACTORIES[backend] = factory


@dataclass
class Contender:
    """One configuration in the interleaved loop: its pipeline, recorded times, and failure if any."""

    config: BenchConfig
    pipeline: Pipeline | None
    times: StageRecorder = field(default_factory=StageRecorder)
    error: str | None = None
    iteration: int = -1

    @property
    def active(self) -> bool:
        """Still measured (loaded and not failed)."""
        return self.pipeline is not None and self.error is None

    def fail(self, exc: BaseException, where: str) -> None:
        """Drop this configuration from the loop, keeping a one-line reason."""
        self.error = error_text(exc, where)
        logger.warning("%s failed %s", self.config.key, self.error)


def error_text(exc: BaseException, where: str) -> str:
    """One-line '<where>: <Type>: <first line>' for a failure."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{where}: {type(exc).__name__}: {first}"[:ERROR_CHARS]


@dataclass
class LoopSettings:
    """How long to measure and what: rounds or seconds, warm-up rounds, phases, clock, mode."""

    warmup: int = 10
    iters: int | None = 100
    seconds: float | None = None
    phases: tuple[str, ...] = PHASES
    concurrent: bool | str = True  # or "auto": the pipeline's own measured choice
    timer_factory: Callable[[], Timer] = CpuTimer


class PhaseRunner:
    """Runs the phases of one configuration on one batch of the workload."""

    def __init__(self, workload: Workload, settings: LoopSettings) -> None:
        self.workload = workload
        self.settings = settings

    def run(self, phase: str, c: Contender, k: int, record: bool) -> None:
        """Run `phase` of contender `c` on rotated batch `k`; record its times when `record`."""
        getattr(self, f"_{phase}")(c, k, record)

    def _timed(self, c: Contender, fn: Callable[[], object], host: bool = False) -> int:
        """Nanoseconds `fn` took on the configuration's clock (`host`: host work, always on the CPU clock)."""
        backend = str(c.config.extra.get("runner_backend", c.config.backend))
        factory = CpuTimer if host else TIMER_FACTORIES.get(backend, self.settings.timer_factory)
        timer = factory()
        timer.start()
        fn()
        return timer.stop()

    def _put(self, c: Contender, record: bool, values: dict[str, int]) -> None:
        if record:
            for name, ns in values.items():
                c.times.record(name, int(ns), iteration=c.iteration)

    def _model_run(self, c: Contender, k: int, concurrent: bool | str) -> tuple[int, dict[str, int]]:
        pipe = c.pipeline
        assert pipe is not None
        timings: dict[str, int] = {}
        batch = self.workload.batches[k]
        ns = self._timed(c, lambda: pipe.run_batch(batch, timings, concurrent=concurrent))
        return ns, timings

    def prime_call(self, c: Contender, k: int) -> None:
        """One unrecorded call that builds lazy kernels; with an auto headline in a fixed mode, both in turn, so
        the executor's sequential/concurrent trials start in the warm-up rounds, amid the measured traffic."""
        concurrent = self.settings.concurrent
        self._model_run(c, k, bool(k % 2) if concurrent == "auto" else concurrent)

    def _encoder_times(self, timings: dict[str, int]) -> dict[str, int]:
        # per-encoder times, and on GPU backends the H2D/compute/D2H split of each engine
        return {k: v for k, v in timings.items() if k.startswith(("encoder.", "gpu."))}

    def _switch(self, c: Contender, k: int, record: bool) -> None:
        ns, _ = self._model_run(c, k, self.settings.concurrent)
        self._put(c, record, {AFTER_SWITCH: ns})

    def _model(self, c: Contender, k: int, record: bool) -> None:
        concurrent = self.settings.concurrent
        ns, timings = self._model_run(c, k, concurrent)
        values = {HEADLINE: ns, "fusion_head": timings["fusion_head"]}
        if concurrent != "auto" or "other" not in self.settings.phases or not other_is_concurrent(c):
            # auto: only from the rounds whose other phase runs sequential, so `auto / seq` compares calls made
            # amid the same traffic (a concurrent call leaves worker threads spinning that slow the next calls)
            values[f"encoders.{mode_name(concurrent)}"] = timings["encoders"]
        if concurrent is False or "other" not in self.settings.phases:
            values.update(self._encoder_times(timings))
        self._put(c, record, values)

    def _other(self, c: Contender, k: int, record: bool) -> None:
        headline = self.settings.concurrent
        # auto: both fixed modes, each in both phase positions (see _round: the positions swap every round)
        concurrent = other_is_concurrent(c) if headline == "auto" else not headline
        _, timings = self._model_run(c, k, concurrent)
        values = {f"encoders.{mode_name(concurrent)}": timings["encoders"]}
        if not concurrent:
            values.update(self._encoder_times(timings))
        self._put(c, record, values)

    def _preprocess(self, c: Contender, k: int, record: bool) -> None:
        assert c.pipeline is not None
        pre = c.pipeline.preprocessor
        samples = self.workload.samples[k]
        values: dict[str, int] = {}
        for m in self.workload.modalities:
            run = functools.partial(preprocess_modality, pre, m, samples)
            values[f"preprocess.{m}"] = self._timed(c, run, host=True)
        self._put(c, record, values)

    def _e2e(self, c: Contender, k: int, record: bool) -> None:
        pipe = c.pipeline
        assert pipe is not None
        samples = self.workload.samples[k]
        out: list[BatchOutput] = []
        ns = self._timed(c, lambda: out.append(pipe.predict_batch(samples)))
        timings = out[0].timings_ns
        values = {
            "end_to_end": ns,
            "preprocess": timings["preprocess"],
            "postprocess": timings["postprocess"],
        }
        self._put(c, record, values)


def preprocess_modality(pre: Preprocessor, modality: str, samples: list[Sample]) -> None:
    """Run one modality's preprocessing (decode, resize/resample, normalize or tokenize) on raw samples."""
    if modality == "text":
        pre.text([s.text or "" for s in samples])
        return
    for s in samples:
        if modality == "image" and s.image is not None:
            pre.image(s.image)
        elif modality == "audio" and s.audio is not None:
            pre.audio(s.audio, s.sample_rate)


def other_is_concurrent(c: Contender) -> bool:
    """With an auto headline: whether this round's other phase runs concurrent (two rounds each, alternating)."""
    return bool((c.iteration // 2) % 2)


def mode_name(concurrent: bool | str) -> str:
    """'concurrent', 'sequential' or 'auto'."""
    if concurrent == "auto":
        return "auto"
    return "concurrent" if concurrent else "sequential"


def _round(runner: PhaseRunner, contenders: list[Contender], r: int, record: bool) -> None:
    """One round: a visit to every active contender in rotated order, each running all phases back to back."""
    active = [c for c in contenders if c.active]
    if not active:
        return
    shift = r % len(active)
    k = r % len(runner.workload)
    phases = list(runner.settings.phases)
    if r % 2 and HEADLINE in phases and "other" in phases:
        # the two encoder modes swap places every other round: neither gets the warmer position
        a, b = phases.index(HEADLINE), phases.index("other")
        phases[a], phases[b] = phases[b], phases[a]
    for c in active[shift:] + active[:shift]:
        c.iteration = c.times.next_iteration() if record else -1
        for phase in phases:
            try:
                runner.run(phase, c, k, record)
            except Exception as exc:  # a configuration that breaks mid-run is reported, not fatal
                c.fail(exc, f"{phase} phase")
                break


def settle_auto(runner: PhaseRunner, c: Contender, cap: int = AUTO_SETTLE_CALLS) -> None:
    """Call the headline until the auto executor has decided every workload it started trying (at most `cap`
    calls), so its sequential/concurrent trials never land in measured rounds (a warm-up too short for them)."""
    auto = getattr(getattr(c.pipeline, "executor", None), "auto", None)
    calls = 0
    while auto is not None and (calls == 0 or auto.pending()) and calls < cap:  # one call starts undecided trials
        runner.run(HEADLINE, c, calls % len(runner.workload), record=False)
        calls += 1
    if auto is not None and auto.pending():
        logger.warning("%s: the auto executor is still deciding after %d priming calls", c.config.key, cap)


def prime(runner: PhaseRunner, contenders: list[Contender], batches: int = PRIME_BATCHES) -> None:
    """Run each contender over its first distinct batches (loads lazily built kernels, lets torch.compile
    see varied shapes, and catches configurations that cannot run, before any timing)."""
    for c in contenders:
        if not c.active:
            continue
        try:
            for k in range(min(batches, len(runner.workload))):
                runner.prime_call(c, k)
            for phase in runner.settings.phases:
                if phase not in (HEADLINE, SWITCH):  # those run the headline: primed above
                    runner.run(phase, c, 0, record=False)
        except Exception as exc:  # e.g. torch.compile failing on first call
            c.fail(exc, "first run")


def interleave(contenders: list[Contender], workload: Workload, settings: LoopSettings) -> tuple[int, float]:
    """Prime, warm up (unrecorded), then measure rounds; returns (measured rounds, wall seconds)."""
    runner = PhaseRunner(workload, settings)
    prime(runner, contenders)
    for r in track(range(settings.warmup), "bench warm-up rounds"):  # a bar with ETA in the CLI (stderr)
        _round(runner, contenders, r, record=False)
    for c in contenders:
        # the auto executor decides during the warm-up rounds, amid the same traffic as the measured ones; what
        # a warm-up too short for its trials left undecided finishes here, before any measured call
        if c.active:
            settle_auto(runner, c)
        c.times.clear()
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collector pauses inside timed regions (as timeit does)
    rounds = 0
    start = time.perf_counter()
    total = settings.iters if settings.seconds is None else None
    try:
        with task("bench rounds", total) as bar:  # a bar with ETA in the CLI (stderr, redrawn twice a second)
            while any(c.active for c in contenders):
                _round(runner, contenders, rounds, record=True)
                rounds += 1
                bar.advance()
                if settings.seconds is not None and time.perf_counter() - start >= settings.seconds:
                    break
                if settings.seconds is None and settings.iters is not None and rounds >= settings.iters:
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    return rounds, time.perf_counter() - start
