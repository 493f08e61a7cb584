"""Pipeline: preprocess → encoders (concurrently) → fusion head → labels (torch-free over ONNX Runtime)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.preprocess import Batch, Preprocessor, select_rows
from mmedge.data.sample import AudioInput, ImageInput, Sample
from mmedge.errors import BackendError, BundleError, InputError
from mmedge.precision import Precision, PrecisionLike
from mmedge.runtime.backends import backend_info
from mmedge.runtime.executors import Concurrency, Executor, ThreadPoolEncoders, scatter
from mmedge.runtime.loading import load_runners
from mmedge.runtime.options import RunnerOptions, ThreadsLike, resolve_threads
from mmedge.runtime.runner import Runner
from mmedge.specs import HEAD, embedding_name

log = logging.getLogger(__name__)
HEAD_CHUNK = 256  # rows per head call when its runner sets no limit (bounds memory on large evaluations)
ConcurrentLike = bool | str  # True, False or "auto" (measured per workload by the executor)


def check_concurrent(value: object) -> ConcurrentLike:
    """`value` if it is True, False or 'auto'; BackendError otherwise."""
    if isinstance(value, bool) or value == "auto":
        return value  # type: ignore[return-value]
    raise BackendError(f"concurrent must be True, False or 'auto', got {value!r}")


@dataclass
class Prediction:
    """The result for one sample."""

    label: str
    index: int
    probabilities: dict[str, float]
    present: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"label": self.label, "index": self.index, "probabilities": self.probabilities,
                "present": self.present, "timings_ms": self.timings_ms}


@dataclass
class BatchOutput:
    """Logits/probabilities of a batch and the time spent per stage (ns)."""

    logits: np.ndarray
    probabilities: np.ndarray
    timings_ns: dict[str, int]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for stability, returned as float32."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def resolve_precisions(bundle: Bundle, precision: PrecisionLike, backend: str = "onnxruntime") -> dict[str, str]:
    """The artifact key per component for `precision` on `backend` (see mmedge.precision)."""
    return Precision.parse(precision).resolve(bundle, backend)


def preprocessor_for(bundle: Bundle) -> Preprocessor:
    """The bundle's input preparation (tokenizer confined and sha256-checked before it is opened)."""
    missing = [m for m in bundle.modalities if getattr(bundle.preprocessing, m) is None]
    if missing:  # bundles for engine builds may lack it; one that serves raw inputs cannot
        raise BundleError(f"{bundle.root}: preprocessing.{missing[0]} is missing from bundle.json, so "
                          f"{missing[0]} inputs cannot be prepared; re-export the bundle")
    bundle.verify_preprocessing()
    preprocessor = Preprocessor(list(bundle.modalities), bundle.preprocessing, root=bundle.root)
    preprocessor.import_decoders()
    return preprocessor


class Pipeline:
    """One active runner per component; the backend's executor runs the encoders; then the fusion head."""

    def __init__(self, bundle: Bundle, runners: dict[str, Runner], concurrent: ConcurrentLike = "auto",
                 executor: Executor | None = None, preprocessor: Preprocessor | None = None) -> None:
        self.bundle = bundle
        self.runners = runners
        self.modalities = list(bundle.modalities)
        self.preprocessor = preprocessor or preprocessor_for(bundle)
        self.concurrent = check_concurrent(concurrent)
        self.threads: int | None = None  # intra-op threads per session (set by from_bundle)
        for runner in runners.values():
            runner.activate()
        self.executor = executor or ThreadPoolEncoders(runners, self.modalities)
        head_inputs = {s.name: s for s in runners[HEAD].inputs}
        self.embed_dim = int(head_inputs[embedding_name(self.modalities[0])].shape[1])

    @classmethod
    def from_bundle(cls, bundle: str | Path | Bundle, backend: str = "onnxruntime",
                    precision: PrecisionLike = "fp32", threads: ThreadsLike = None,
                    concurrent: ConcurrentLike = "auto", verify: bool = True, options: RunnerOptions | None = None,
                    **settings: Any) -> Pipeline:
        """Load a bundle (or take a loaded one) and build one active runner per component on `backend`.

        `settings` are runner options: `threads`/`device` for every backend, the rest for `backend`
        only (e.g. `cuda_graph=True` on tensorrt); an unknown one is a BackendError. `threads="auto"`:
        the usable cores shared among the encoders, or all of them with `concurrent=False` (see
        `resolve_threads`). `concurrent="auto"`: the executor measures per workload whether running
        encoders concurrently pays (True/False force it).
        """
        check_concurrent(concurrent)
        loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, verify=verify)
        info = backend_info(backend)
        sharing = concurrent is not False  # encoders forced sequential never run two sessions at once
        opts = RunnerOptions.make(options, threads=resolve_threads(threads, len(loaded.modalities), sharing),
                                  **settings)
        keys = resolve_precisions(loaded, precision, backend)
        built: dict[str, Runner] = {}
        executor: Executor | None = None
        try:
            preprocessor = load_runners(info, loaded, keys, opts, built, lambda: preprocessor_for(loaded))
            runners = {c: built[c] for c in keys}  # bundle order, whatever order the loads finished in
            executor = info.make_executor(runners, list(loaded.modalities), opts)
            pipe = cls(loaded, runners, concurrent, executor, preprocessor)
            pipe.threads = opts.threads
            return pipe
        except BaseException:  # nothing half-built stays active
            if executor is not None:
                executor.close()
            for r in built.values():
                r.deactivate()
            raise

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the executor and every runner (sessions, streams, buffers); idempotent."""
        self.executor.close()
        for runner in self.runners.values():
            runner.deactivate()

    @property
    def closed(self) -> bool:
        """True after close()."""
        return not self.runners[HEAD].is_active

    # ---- stages ------------------------------------------------------------------------
    def check_samples(self, samples: list[Sample]) -> None:
        """InputError for a sample with no modality, or with one this bundle cannot use."""
        if not samples:
            raise InputError("no samples given")
        for i, s in enumerate(samples):
            have = [m for m, ok in s.present().items() if ok]
            extra = [m for m in have if m not in self.modalities]
            if extra:
                raise InputError(f"sample {i}: this bundle has no {', '.join(extra)} encoder "
                                 f"(its modalities: {', '.join(self.modalities)})")
            if not have:
                raise InputError(f"sample {i}: all modalities are absent; give at least one of "
                                 f"{', '.join(self.modalities)}")
            if self.bundle.requires_all_modalities and len(have) < len(self.modalities):
                raise InputError(f"sample {i}: this model's fusion ('{self.bundle.fusion.get('op')}') needs every "
                                 f"modality ({', '.join(self.modalities)}); missing: "
                                 f"{', '.join(m for m in self.modalities if m not in have)}")

    def preprocess(self, samples: list[Sample], timings: dict[str, int] | None = None) -> Batch:
        """Validate and preprocess raw samples."""
        self.check_samples(samples)
        start = time.perf_counter_ns()
        batch = self.preprocessor.batch(samples)
        if timings is not None:
            timings["preprocess"] = time.perf_counter_ns() - start
        return batch

    def encode(self, batch: Batch, timings: dict[str, int] | None = None,
               concurrent: ConcurrentLike | None = None) -> dict[str, np.ndarray]:
        """Embeddings of the modalities present in the batch (absent rows: zeros, never encoded)."""
        self._check_open()
        start = time.perf_counter_ns()
        rows = {m: np.flatnonzero(batch.present[:, j] > 0) for j, m in enumerate(self.modalities)}
        # Only the rows that carry a modality are encoded: it saves compute, and placeholders would
        # otherwise enter dynamic int8's per-call activation range.
        feeds = {m: batch.feeds[m] if r.size == len(batch) else select_rows(batch.feeds[m], r)
                 for m, r in rows.items() if r.size}
        results = self.executor.encode(feeds, self._mode(concurrent))
        embeddings = {m: scatter(rows[m], results[m][0], len(batch)) if m in results
                      else np.zeros((len(batch), self.embed_dim), dtype=np.float32) for m in self.modalities}
        if timings is not None:
            timings.update({f"encoder.{m}": ns for m, (_, ns) in results.items()})
            timings["encoders"] = time.perf_counter_ns() - start
        return embeddings

    def head(self, embeddings: dict[str, np.ndarray], present: np.ndarray,
             timings: dict[str, int] | None = None) -> np.ndarray:
        """Fusion head: embeddings + present mask → logits (in chunks the head's runner accepts)."""
        self._check_open()
        start = time.perf_counter_ns()
        runner, size = self.runners[HEAD], len(present)
        step = runner.max_batch or HEAD_CHUNK  # the head is per-row: chunking cannot change a result
        parts = []
        for s in range(0, size, step):
            feed = {embedding_name(m): embeddings[m][s : s + step] for m in self.modalities}
            feed["present"] = present[s : s + step].astype(np.float32)
            parts.append(runner.infer(feed)["logits"])
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if timings is not None:
            timings["fusion_head"] = time.perf_counter_ns() - start
        return logits

    def run_batch(self, batch: Batch, timings: dict[str, int] | None = None,
                  concurrent: ConcurrentLike | None = None) -> np.ndarray:
        """Model compute only (encoders + head) on a preprocessed batch → logits."""
        self._check_open()
        return self.executor.run(self, batch, timings, self._mode(concurrent))

    def _mode(self, concurrent: ConcurrentLike | None) -> Concurrency:
        """The executor's argument: True/False, or None where it decides ('auto' on an executor that cannot: True)."""
        mode = check_concurrent(self.concurrent if concurrent is None else concurrent)
        if mode == "auto":
            return None if self.executor.decides_concurrency else True
        return bool(mode)

    def _check_open(self) -> None:
        if self.closed:
            raise BackendError("this pipeline is closed; create a new one with Pipeline.from_bundle")

    # ---- end to end --------------------------------------------------------------------
    def predict_batch(self, samples: list[Sample]) -> BatchOutput:
        """Raw samples → logits, probabilities and per-stage timings."""
        timings: dict[str, int] = {}
        start = time.perf_counter_ns()
        batch = self.preprocess(samples, timings)
        logits = self.run_batch(batch, timings)
        post = time.perf_counter_ns()
        probs = softmax(logits)
        timings["postprocess"] = time.perf_counter_ns() - post
        timings["total"] = time.perf_counter_ns() - start
        return BatchOutput(logits, probs, timings)

    def predict(self, text: str | None = None, image: ImageInput | None = None,
                audio: AudioInput | None = None, sample_rate: int | None = None) -> Prediction:
        """Classify one sample given any subset of text, image and audio.

        text: a str; None or blank/whitespace-only means absent.
        image: a file path (str or pathlib.Path), a PIL.Image.Image, or a numpy array HxW / HxWx1 / HxWx3 /
            HxWx4 scaled by its dtype: uint8 as is, uint16 / 257, bool as 0/255, float in [0, 1] x 255 (a float
            outside [0, 1], NaN or another dtype is an InputError). Files and PIL images are turned upright
            by their EXIF orientation; 16-bit files are scaled like uint16. Files over 50 MP (or
            $MMEDGE_MAX_IMAGE_PIXELS) or 100 MiB ($MMEDGE_MAX_IMAGE_BYTES) are refused before decoding.
        audio: a file path (str or pathlib.Path; only the clip's first seconds are read), or a numpy array
            [samples] or [samples, channels] at `sample_rate` Hz (1 kHz..384 kHz): float taken as is (must be
            finite), int8 / 128, int16 / 32768, int32 / 2**31, uint8 (x - 128) / 128; other dtypes are an
            InputError. Channels are averaged, the clip is trimmed, then resampled and zero-padded.
        Any other type is an InputError naming the accepted ones.
        """
        sample = Sample(label=None, text=text, image=image, audio=audio, sample_rate=sample_rate)
        out = self.predict_batch([sample])
        probs = out.probabilities[0]
        idx = int(probs.argmax())
        labels = self.bundle.labels
        return Prediction(label=labels[idx], index=idx,
                          probabilities={labels[i]: float(p) for i, p in enumerate(probs)},
                          present=[m for m, ok in sample.present().items() if ok],
                          timings_ms={k: v / 1e6 for k, v in out.timings_ns.items()})

