"""Encoders → fusion head on the GPU: concurrent (one stream per encoder, joined by events) or
sequential, with per-stage GPU times from CUDA events.

Encoder outputs stay on the device: the head copies them device-to-device after its stream
waits (`cudaStreamWaitEvent`) on each encoder's "compute done" event. Inputs of the head that
no encoder produces (the `present` mask, zero embeddings of absent modalities) come from the
host in `feeds[head]`. `CudaStreamEncoders` is the tensorrt backend's executor: `Pipeline` runs
every encoder and the head through it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mmedge.data.preprocess import select_rows
from mmedge.errors import BackendError
from mmedge.runtime.backends.tensorrt.io_types import DeviceTensor, StageTimes
from mmedge.runtime.cuda.contract import CudaApi
from mmedge.runtime.executors import Concurrency, Encoded, Executor, Feeds, scatter
from mmedge.specs import HEAD, TensorSpec, embedding_name

if TYPE_CHECKING:
    from mmedge.data.preprocess import Batch
    from mmedge.runtime.pipeline import Pipeline
    from mmedge.runtime.runner import Runner

log = logging.getLogger(__name__)


@runtime_checkable
class StreamedRunner(Protocol):
    """What the GPU pipeline needs from a runner (TensorRTRunner implements it)."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    cuda: CudaApi
    last_timings: StageTimes | None
    lock: threading.RLock

    @property
    def stream(self) -> int: ...

    @property
    def start_event(self) -> int: ...

    @property
    def compute_done_event(self) -> int: ...

    @property
    def end_event(self) -> int: ...

    def activate(self) -> None: ...

    def enqueue(self, feed: Mapping[str, np.ndarray | DeviceTensor], fetch: bool = True) -> None: ...

    def synchronize(self) -> dict[str, np.ndarray]: ...

    def device_output(self, name: str) -> DeviceTensor: ...


@dataclass
class GpuRunResult:
    """Outputs per component and the timing of one pipeline call."""

    mode: str  # "concurrent" | "sequential"
    outputs: dict[str, dict[str, np.ndarray]]
    stages: dict[str, StageTimes]
    gpu_span_ms: float  # earliest encoder start → head's last D2H, on the GPU clock
    host_ms: float  # wall time of the whole call on the host
    encoders: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Timing summary (no tensors) for reports."""
        return {
            "mode": self.mode,
            "gpu_span_ms": round(self.gpu_span_ms, 4),
            "host_ms": round(self.host_ms, 4),
            "stages": {name: t.to_json() for name, t in self.stages.items()},
        }


@dataclass
class _Plan:
    encoders: list[str]
    head_host: dict[str, np.ndarray]
    routes: dict[str, str]  # head input name -> encoder producing it


def _plan(
    runners: Mapping[str, StreamedRunner], feeds: Mapping[str, Mapping[str, np.ndarray]], head: str
) -> _Plan:
    if head not in runners:
        raise BackendError(f"GPU pipeline: no runner for the head '{head}' (runners: {sorted(runners)})")
    encoders = [name for name in feeds if name != head]
    missing = [name for name in encoders if name not in runners]
    if missing:
        raise BackendError(
            f"GPU pipeline: feeds for {missing} but no runner for them (runners: {sorted(runners)})"
        )
    apis = {id(runners[n].cuda) for n in [*encoders, head]}
    if len(apis) != 1:
        raise BackendError(
            "GPU pipeline: runners use different CUDA API instances; create them all with the "
            "same get_cuda_api() choice"
        )
    head_inputs = {s.name for s in runners[head].inputs}
    routes = {out.name: enc for enc in encoders for out in runners[enc].outputs if out.name in head_inputs}
    head_host = dict(feeds.get(head, {}))
    both = sorted(set(routes) & set(head_host))
    if both:
        raise BackendError(
            f"GPU pipeline: {both} come from an encoder and also from feeds['{head}']; pass only one"
        )
    absent = sorted(head_inputs - set(routes) - set(head_host))
    if absent:
        raise BackendError(
            f"GPU pipeline: head inputs {absent} are neither produced by an encoder in this call nor "
            f"given in feeds['{head}'] (absent modalities need zero embeddings and the present mask)"
        )
    return _Plan(encoders, head_host, routes)


def _head_feed(runners: Mapping[str, StreamedRunner], plan: _Plan) -> dict[str, np.ndarray | DeviceTensor]:
    feed: dict[str, np.ndarray | DeviceTensor] = dict(plan.head_host)
    for name, encoder in plan.routes.items():
        feed[name] = runners[encoder].device_output(name)
    return feed


def _result(
    mode: str,
    runners: Mapping[str, StreamedRunner],
    plan: _Plan,
    head: str,
    outputs: dict[str, dict[str, np.ndarray]],
    started: float,
) -> GpuRunResult:
    host_ms = (time.perf_counter() - started) * 1e3
    head_runner = runners[head]
    cuda = head_runner.cuda
    names = [*plan.encoders, head]
    stages = {}
    for name in names:
        timings = runners[name].last_timings
        if timings is None:
            raise BackendError(f"GPU pipeline: {runners[name].name} has no timings after synchronize()")
        stages[name] = timings
    span = stages[head].gpu_ms
    for name in plan.encoders:
        span = max(span, cuda.event_elapsed_ms(runners[name].start_event, head_runner.end_event))
    return GpuRunResult(
        mode=mode,
        outputs=outputs,
        stages=stages,
        gpu_span_ms=span,
        host_ms=host_ms,
        encoders=list(plan.encoders),
    )


def run_concurrent(
    runners: Mapping[str, StreamedRunner],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    head: str = HEAD,
    fetch_embeddings: bool = False,
) -> GpuRunResult:
    """Enqueue every encoder in `feeds` on its own stream, make the head wait on their events, run it.

    `feeds[encoder]` holds host inputs of each present encoder; `feeds[head]` the head inputs
    no encoder produces. With `fetch_embeddings`, encoder outputs are also copied to the host.
    """
    plan = _plan(runners, feeds, head)
    started = time.perf_counter()
    head_runner = runners[head]
    for name in [*plan.encoders, head]:
        runners[name].activate()
    for name in plan.encoders:
        runners[name].enqueue(feeds[name], fetch=fetch_embeddings)
    for name in plan.encoders:
        head_runner.cuda.stream_wait_event(head_runner.stream, runners[name].compute_done_event)
    head_runner.enqueue(_head_feed(runners, plan))
    outputs = {name: runners[name].synchronize() for name in plan.encoders}
    outputs[head] = head_runner.synchronize()
    return _result("concurrent", runners, plan, head, outputs, started)


def run_sequential(
    runners: Mapping[str, StreamedRunner],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    head: str = HEAD,
    fetch_embeddings: bool = False,
) -> GpuRunResult:
    """Same as run_concurrent, but each encoder finishes before the next starts (the baseline)."""
    plan = _plan(runners, feeds, head)
    started = time.perf_counter()
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for name in plan.encoders:
        runners[name].activate()
        runners[name].enqueue(feeds[name], fetch=fetch_embeddings)
        outputs[name] = runners[name].synchronize()
    runners[head].activate()
    runners[head].enqueue(_head_feed(runners, plan))
    outputs[head] = runners[head].synchronize()
    return _result("sequential", runners, plan, head, outputs, started)


class CudaStreamEncoders(Executor):
    """The tensorrt backend's executor: one stream per encoder, events join them before the head.

    Thread-safe: a call holds the locks of the runners it uses (always taken in the same order),
    so threads sharing one Pipeline get the results of sequential calls.
    """

    def encode(self, feeds: Feeds, concurrent: Concurrency) -> Encoded:
        """Embeddings (copied to the host) and GPU time of each encoder in `feeds` (None: concurrent streams)."""
        self.check_open()
        with self._holding(list(feeds)):
            return self._encode(feeds, concurrent is not False)

    @contextlib.contextmanager
    def _holding(self, names: list[str]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for name in sorted(names):
                stack.enter_context(_streamed(self.runners[name]).lock)
            yield

    def _encode(self, feeds: Feeds, concurrent: bool) -> Encoded:
        runners = {m: _streamed(self.runners[m]) for m in feeds}
        if concurrent:
            for m, feed in feeds.items():
                runners[m].enqueue(feed)
            outs = {m: runners[m].synchronize() for m in feeds}
        else:
            outs = {}
            for m, feed in feeds.items():
                runners[m].enqueue(feed)
                outs[m] = runners[m].synchronize()
        return {m: (outs[m][embedding_name(m)], _gpu_ns(runners[m])) for m in feeds}

    def run(self, pipe: Pipeline, batch: Batch, timings: dict[str, int] | None,
            concurrent: Concurrency) -> np.ndarray:
        """Encoders with every row present feed the head device-to-device; the rest come from the host."""
        self.check_open()
        with self._holding(list(self.runners)):
            return self._run(pipe, batch, timings, concurrent is not False)

    def _run(self, pipe: Pipeline, batch: Batch, timings: dict[str, int] | None, concurrent: bool) -> np.ndarray:
        size = len(batch)
        rows = {m: np.flatnonzero(batch.present[:, j] > 0) for j, m in enumerate(self.modalities)}
        full = [m for m in self.modalities if rows[m].size == size]
        partial = {m: select_rows(batch.feeds[m], r) for m, r in rows.items() if 0 < r.size < size}
        encoded = self._encode(partial, concurrent) if partial else {}
        head_host = {embedding_name(m): scatter(rows[m], encoded[m][0], size) if m in encoded
                     else np.zeros((size, pipe.embed_dim), dtype=np.float32)
                     for m in self.modalities if m not in full}
        head_host["present"] = batch.present.astype(np.float32)
        feeds: dict[str, dict[str, np.ndarray]] = {m: batch.feeds[m] for m in full}
        feeds[HEAD] = head_host
        streamed = {name: _streamed(r) for name, r in self.runners.items()}
        run = run_concurrent if concurrent else run_sequential
        result = run(streamed, feeds, HEAD)
        if timings is not None:
            timings.update({f"encoder.{m}": ns for m, (_, ns) in encoded.items()})
            timings.update({f"encoder.{m}": int(result.stages[m].gpu_ms * 1e6) for m in full})
            timings["encoders"] = int(_encoders_span_ms(streamed, full) * 1e6) + sum(ns for _, ns in encoded.values())
            timings["fusion_head"] = int(result.stages[HEAD].gpu_ms * 1e6)
            for name in [*full, HEAD]:  # where the GPU time goes, from CUDA events
                stage = result.stages[name]
                timings.update({f"gpu.{name}.h2d": int(stage.h2d_ms * 1e6),
                                f"gpu.{name}.compute": int(stage.compute_ms * 1e6),
                                f"gpu.{name}.d2h": int(stage.d2h_ms * 1e6)})
        return result.outputs[HEAD]["logits"]


def _streamed(runner: Runner) -> StreamedRunner:
    if not isinstance(runner, StreamedRunner):
        raise BackendError(f"{runner.name}: the CUDA-stream executor needs a streamed runner (tensorrt)")
    return runner


def _gpu_ns(runner: StreamedRunner) -> int:
    if runner.last_timings is None:
        raise BackendError(f"{runner.name}: no timings after synchronize()")
    return int(runner.last_timings.gpu_ms * 1e6)


def _encoders_span_ms(runners: Mapping[str, StreamedRunner], encoders: list[str]) -> float:
    """GPU time from the first encoder's start to the last encoder's compute end."""
    if not encoders:
        return 0.0
    cuda, first = runners[encoders[0]].cuda, runners[encoders[0]].start_event
    return max(cuda.event_elapsed_ms(first, runners[m].compute_done_event) for m in encoders)
