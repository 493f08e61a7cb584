"""How a pipeline runs its encoders: the backend decides (a thread pool on CPU, CUDA streams on GPU).

An executor gets the active runners of one pipeline. `encode` runs the encoders that have rows
in a batch and returns each one's embedding and time; `run` is encoders + head in one go, which a
GPU executor overrides to keep embeddings on the device.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from mmedge.errors import BackendError
from mmedge.specs import embedding_name

if TYPE_CHECKING:
    from mmedge.data.preprocess import Batch
    from mmedge.runtime.pipeline import Pipeline
    from mmedge.runtime.runner import Runner

Feeds = dict[str, dict[str, np.ndarray]]  # modality -> its encoder's feed
Encoded = dict[str, tuple[np.ndarray, int]]  # modality -> (embedding rows, ns)


class Executor(ABC):
    """Runs the encoders of one pipeline, and the whole model on a batch."""

    def __init__(self, runners: dict[str, Runner], modalities: list[str]) -> None:
        self.runners, self.modalities = runners, list(modalities)
        self._closed = False

    @abstractmethod
    def encode(self, feeds: Feeds, concurrent: bool) -> Encoded:
        """Embedding and time of each modality in `feeds`."""

    def run(self, pipe: Pipeline, batch: Batch, timings: dict[str, int] | None, concurrent: bool) -> np.ndarray:
        """Encoders then fusion head on a preprocessed batch → logits."""
        return pipe.head(pipe.encode(batch, timings, concurrent), batch.present, timings)

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


class ThreadPoolEncoders(Executor):
    """CPU runtimes: encoders concurrently on a thread pool (only when more than one runs)."""

    def __init__(self, runners: dict[str, Runner], modalities: list[str]) -> None:
        super().__init__(runners, modalities)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(modalities)), thread_name_prefix="mmedge-enc")

    def encode(self, feeds: Feeds, concurrent: bool) -> Encoded:
        """Encoders on the pool (several, concurrent) or in the calling thread."""
        self.check_open()
        calls = {m: (self.runners[m], feed, embedding_name(m)) for m, feed in feeds.items()}
        if concurrent and len(calls) > 1:
            futures = {m: self._pool.submit(timed_infer, *args) for m, args in calls.items()}
            return {m: f.result() for m, f in futures.items()}
        return {m: timed_infer(*args) for m, args in calls.items()}

    def close(self) -> None:
        """Shut the thread pool down."""
        super().close()
        self._pool.shutdown(wait=True)


def scatter(rows: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """A [size, D] float32 array with `values` at `rows` and zeros elsewhere."""
    out = np.zeros((size, values.shape[1]), dtype=np.float32)
    out[rows] = values
    return out

