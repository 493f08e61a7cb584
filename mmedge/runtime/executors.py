"""How a pipeline runs its encoders: the backend decides (a thread pool on CPU, CUDA streams on GPU).

An executor gets the active runners of one pipeline. `encode` runs the encoders that have rows
in a batch and returns each one's embedding and time; `run` is encoders + head in one go, which a
GPU executor overrides to keep embeddings on the device.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import numpy as np

from mmedge.errors import BackendError
from mmedge.specs import embedding_name

if TYPE_CHECKING:
    from mmedge.data.preprocess import Batch
    from mmedge.runtime.pipeline import Pipeline
    from mmedge.runtime.runner import Runner

log = logging.getLogger(__name__)
Feeds = dict[str, dict[str, np.ndarray]]  # modality -> its encoder's feed
Encoded = dict[str, tuple[np.ndarray, int]]  # modality -> (embedding rows, ns)
Concurrency = bool | None  # True / False, or None: the executor decides (AutoConcurrency)


class Executor(ABC):
    """Runs the encoders of one pipeline, and the whole model on a batch."""

    decides_concurrency = False  # True: `encode(feeds, None)` measures and picks the mode itself

    def __init__(self, runners: dict[str, Runner], modalities: list[str]) -> None:
        self.runners, self.modalities = runners, list(modalities)
        self._closed = False

    @abstractmethod
    def encode(self, feeds: Feeds, concurrent: Concurrency) -> Encoded:
        """Embedding and time of each modality in `feeds` (`concurrent` None: the executor's choice)."""

    def run(self, pipe: Pipeline, batch: Batch, timings: dict[str, int] | None,
            concurrent: Concurrency) -> np.ndarray:
        """Encoders then fusion head on a preprocessed batch → logits."""
        return pipe.head(pipe.encode(batch, timings, "auto" if concurrent is None else concurrent), batch.present,
                         timings)

    def close(self) -> None:
        """Release what the executor holds (runners are the pipeline's)."""
        self._closed = True

    def check_open(self) -> None:
        """BackendError once closed."""
        if self._closed:
            raise BackendError("this pipeline is closed; create a new one with Pipeline.from_bundle")


def timed_infer(runner: Runner, feed: dict[str, np.ndarray], output: str) -> tuple[np.ndarray, int]:
    """One output of `runner` on `feed` and the wall time it took (ns)."""
    start = time.perf_counter_ns()
    out = runner.infer(feed)[output]
    return out, time.perf_counter_ns() - start


WorkKey = tuple[tuple[str, ...], int]  # (modalities encoded, rows): what decides whether concurrency pays


class AutoConcurrency:
    """Decides per workload (modalities x rows) whether concurrent encoders pay, from its first real calls.

    The first calls of a workload alternate sequential and concurrent in the order S C C S (so both
    see the same machine state, in both positions of a pair of calls); each mode's first `skip` calls
    are not counted (lazy kernel set-up, the pool's threads starting), then after `trials` counted calls
    per mode concurrent wins only when it is at least `margin` faster both by its best call (other
    processes only ever add time) and by its median call (one lucky concurrent call must not decide: on
    the edge preset such a choice ran 1.14x sequential's time). Every
    `recheck` calls a decided workload is measured again, so one unlucky trial cannot stick. On small
    graphs the thread hand-off costs more than the overlap gains (tiny preset, ONNX Runtime, batch 1:
    1.4-1.6x slower concurrent, docs/performance.md), on large ones overlap can win, and which applies
    depends on the bundle, backend, threads, machine and its load, so it is measured rather than guessed.
    """

    def __init__(self, trials: int = 7, skip: int = 2, margin: float = 0.95, recheck: int = 2000) -> None:
        self.trials, self.skip, self.margin, self.recheck = trials, skip, margin, recheck
        self.decided: dict[WorkKey, bool] = {}
        self._times: dict[WorkKey, dict[bool, list[int]]] = {}
        self._lock = threading.Lock()

    def choose(self, key: WorkKey) -> bool:
        """The mode for the next call of workload `key` (a trial mode until decided)."""
        with self._lock:
            if key in self.decided:
                return self.decided[key]
            seen = self._times.setdefault(key, {False: [], True: []})
            # sequential, concurrent, concurrent, sequential, ...: a caller whose calls come in pairs (a bench
            # visit, a frame and its retry) would otherwise always give one mode the first, colder call
            return (len(seen[False]) + len(seen[True])) % 4 in (1, 2)

    def record(self, key: WorkKey, concurrent: bool, ns: int) -> None:
        """Record a trial's wall time; decide once both modes have `skip + trials` samples."""
        with self._lock:
            if key in self.decided:
                return
            seen = self._times.setdefault(key, {False: [], True: []})
            seen[concurrent].append(ns)
            need = self.skip + max(1, self.trials)
            if len(seen[False]) >= need and len(seen[True]) >= need:
                seq_calls, conc_calls = seen[False][self.skip:], seen[True][self.skip:]
                self.decided[key] = self.concurrent_wins(seq_calls, conc_calls)
                del self._times[key]
                log.info("encoders %s x%d rows: %s (best sequential %.3f ms, concurrent %.3f ms)", "+".join(key[0]),
                         key[1], "concurrent" if self.decided[key] else "sequential", min(seq_calls) / 1e6,
                         min(conc_calls) / 1e6)

    def concurrent_wins(self, seq_calls: list[int], conc_calls: list[int]) -> bool:
        """Concurrent only when it wins on the best call AND the typical (median) one: one lucky concurrent
        call amid slow ones stays sequential, which can only miss a gain, never lose."""
        return (min(conc_calls) < self.margin * min(seq_calls)
                and float(np.median(conc_calls)) < self.margin * float(np.median(seq_calls)))

    def pending(self) -> int:
        """How many workloads have started their trials but are not decided yet."""
        with self._lock:
            return len(self._times)

    def forget(self, key: WorkKey) -> None:
        """Drop the decision for `key`: its next calls are trials again."""
        with self._lock:
            self.decided.pop(key, None)


def work_key(feeds: Feeds) -> WorkKey:
    """The workload of an encode call: which encoders run and on how many rows."""
    first = next(iter(next(iter(feeds.values())).values()))
    return tuple(sorted(feeds)), int(first.shape[0])


def plan_lanes(costs: dict[str, float], lanes: int) -> list[list[str]]:
    """Encoders packed into at most `lanes` groups: longest first, each onto the least-loaded group (LPT)."""
    order = sorted(costs, key=lambda m: -costs[m])
    groups: list[list[str]] = [[] for _ in range(max(1, min(lanes, len(order))))]
    loads = [0.0] * len(groups)
    for modality in order:
        lane = loads.index(min(loads))
        groups[lane].append(modality)
        loads[lane] += costs[modality]
    return groups


def run_lane(calls: list[tuple[str, tuple[Runner, dict[str, np.ndarray], str]]]) -> Encoded:
    """The encoders of one lane, one after another."""
    return {m: timed_infer(*args) for m, args in calls}


class ThreadPoolEncoders(Executor):
    """CPU runtimes: encoders concurrently where that pays (measured), else one by one.

    Concurrent calls run in `lanes` groups (the cores the sessions can use at once): the calling thread
    runs the first group itself (one thread hand-off less) and pool threads the others. With fewer lanes
    than encoders the groups are packed longest-first from each encoder's last measured time at this input
    shape, so on 2 cores a long edge text runs alone while image and audio share the other core (a short
    one shares with audio while image runs alone), instead of three
    threads time-slicing two cores.
    """

    decides_concurrency = True

    def __init__(self, runners: dict[str, Runner], modalities: list[str], auto: AutoConcurrency | None = None,
                 lanes: int | None = None) -> None:
        super().__init__(runners, modalities)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(modalities)), thread_name_prefix="mmedge-enc")
        self.auto = auto or AutoConcurrency()
        self.lanes = max(1, lanes or len(modalities))
        # (modality, input shape) -> its last time (ns): the shape, not only the rows, since a text's time follows
        # its token count (edge int8: ~1.9 ms at 6 tokens, ~3.1 ms at 12), and so does the best packing
        self._cost: dict[tuple[str, tuple[int, ...]], float] = {}
        self._calls = 0  # decided calls since the last re-check (a race only shifts when it happens)

    def encode(self, feeds: Feeds, concurrent: Concurrency) -> Encoded:
        """Encoders on the pool (several, concurrent) or in the calling thread; None: the measured choice."""
        self.check_open()
        calls = {m: (self.runners[m], feed, embedding_name(m)) for m, feed in feeds.items()}
        if len(calls) < 2:
            return {m: timed_infer(*args) for m, args in calls.items()}
        if concurrent is not None:
            return self._encode(calls, concurrent)
        key = work_key(feeds)
        decided = self.auto.decided.get(key)  # lock-free once decided: the same path as a fixed mode
        if decided is not None:
            self._calls += 1
            if self._calls >= self.auto.recheck:
                self._calls = 0
                self.auto.forget(key)
            return self._encode(calls, decided)
        mode = self.auto.choose(key)
        start = time.perf_counter_ns()
        out = self._encode(calls, mode)
        self.auto.record(key, mode, time.perf_counter_ns() - start)
        return out

    def _encode(self, calls: dict[str, tuple[Runner, dict[str, np.ndarray], str]], concurrent: bool) -> Encoded:
        shapes = {m: tuple(next(iter(feed.values())).shape) for m, (_, feed, _) in calls.items()}
        if not concurrent:
            out = run_lane(list(calls.items()))
        else:
            groups = plan_lanes({m: self._cost.get((m, shapes[m]), 1.0) for m in calls}, self.lanes)
            futures = [self._pool.submit(run_lane, [(m, calls[m]) for m in group]) for group in groups[1:]]
            try:
                out = run_lane([(m, calls[m]) for m in groups[0]])
            finally:
                wait(futures)  # no lane is left running when this call returns or raises
            for future in futures:
                out.update(future.result())
        for m, (_, ns) in out.items():
            self._cost[(m, shapes[m])] = float(ns)
        return out

    def close(self) -> None:
        """Shut the thread pool down."""
        super().close()
        self._pool.shutdown(wait=True)


def scatter(rows: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """A [size, D] float32 array with `values` at `rows` and zeros elsewhere."""
    out = np.zeros((size, values.shape[1]), dtype=np.float32)
    out[rows] = values
    return out

