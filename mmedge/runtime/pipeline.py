"""Pipeline: preprocess → encoders (concurrently) → fusion head → labels (torch-free over ONNX Runtime)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.preprocess import Batch, Preprocessor, select_rows
from mmedge.data.sample import Sample
from mmedge.errors import InputError
from mmedge.runtime.runner import Runner, get_runner_factory
from mmedge.specs import HEAD, PRECISIONS, embedding_name

log = logging.getLogger(__name__)
Precision = str | dict[str, str]


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


AUTO = "auto"


def resolve_precisions(bundle: Bundle, precision: Precision) -> dict[str, str]:
    """One precision per component: a single name, a {component: precision} map, or 'auto'.

    'auto' reads the map chosen by `mmedge quantize --auto`; a missing artifact is a BundleError
    that names the `mmedge quantize` command creating it.
    """
    components = [*bundle.modalities, HEAD]
    if precision == AUTO:
        auto = bundle.provenance.get("auto_precision", {}).get("choice")
        if not auto:
            raise InputError(f"bundle {bundle.root} has no automatic precision choice; "
                             f"run: mmedge quantize {bundle.root} --auto")
        precision = dict(auto)
    chosen = {c: precision for c in components} if isinstance(precision, str) else dict(precision)
    unknown = sorted(set(chosen) - set(components))
    if unknown:
        raise InputError(f"precision given for unknown component(s) {unknown} (bundle has {components})")
    for comp in components:
        chosen.setdefault(comp, "fp32")
        if chosen[comp] not in PRECISIONS and not chosen[comp].startswith("int8"):
            raise InputError(f"unknown precision '{chosen[comp]}' for {comp} "
                             f"(choose from {', '.join(PRECISIONS)}, int8-trt)")
        bundle.artifact(comp, chosen[comp])
    return chosen


class Pipeline:
    """One runner per component; encoders run concurrently on a thread pool; then the fusion head."""

    def __init__(self, bundle: Bundle, runners: dict[str, Runner], concurrent: bool = True) -> None:
        self.bundle = bundle
        self.runners = runners
        self.modalities = list(bundle.modalities)
        self.preprocessor = Preprocessor(self.modalities, bundle.preprocessing, root=bundle.root)
        self.concurrent = concurrent
        self._pool = ThreadPoolExecutor(max_workers=len(self.modalities), thread_name_prefix="mmedge-enc")
        head_inputs = {s.name: s for s in runners[HEAD].inputs}
        self.embed_dim = int(head_inputs[embedding_name(self.modalities[0])].shape[1])

    @classmethod
    def from_bundle(cls, path: str | Path, backend: str = "onnxruntime", precision: Precision = "fp32",
                    threads: int | None = None, concurrent: bool = True, verify: bool = True,
                    **options: Any) -> Pipeline:
        """Load a bundle and build one runner per component on `backend`."""
        bundle = Bundle.load(path, verify=verify)
        factory = get_runner_factory(backend)
        runners: dict[str, Runner] = {}
        try:
            for comp, prec in resolve_precisions(bundle, precision).items():
                runners[comp] = factory(bundle, comp, prec, threads=threads, **options)
        except Exception:
            for r in runners.values():
                r.__exit__(None, None, None)
            raise
        return cls(bundle, runners, concurrent)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release runners (sessions, streams, buffers) and the thread pool."""
        self._pool.shutdown(wait=True)
        for runner in self.runners.values():
            runner.__exit__(None, None, None)

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

    def _encode_one(self, modality: str, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        start = time.perf_counter_ns()
        out = self.runners[modality].infer(feed)[embedding_name(modality)]
        return out, time.perf_counter_ns() - start

    def encode(self, batch: Batch, timings: dict[str, int] | None = None,
               concurrent: bool | None = None) -> dict[str, np.ndarray]:
        """Embeddings of the modalities present in the batch (absent rows: zeros, never encoded)."""
        start = time.perf_counter_ns()
        rows = {m: np.flatnonzero(batch.present[:, j] > 0) for j, m in enumerate(self.modalities)}
        # Only the rows that carry a modality are encoded: it saves compute, and placeholders would
        # otherwise enter dynamic int8's per-call activation range.
        feeds = {m: batch.feeds[m] if r.size == len(batch) else select_rows(batch.feeds[m], r)
                 for m, r in rows.items() if r.size}
        use_pool = self.concurrent if concurrent is None else concurrent
        if use_pool and len(feeds) > 1:
            futures = {m: self._pool.submit(self._encode_one, m, f) for m, f in feeds.items()}
            results = {m: f.result() for m, f in futures.items()}
        else:
            results = {m: self._encode_one(m, f) for m, f in feeds.items()}
        embeddings = {}
        for m in self.modalities:
            embeddings[m] = np.zeros((len(batch), self.embed_dim), dtype=np.float32)
            if m in results:
                embeddings[m][rows[m]] = results[m][0]
        if timings is not None:
            timings.update({f"encoder.{m}": ns for m, (_, ns) in results.items()})
            timings["encoders"] = time.perf_counter_ns() - start
        return embeddings

    def head(self, embeddings: dict[str, np.ndarray], present: np.ndarray,
             timings: dict[str, int] | None = None) -> np.ndarray:
        """Fusion head: embeddings + present mask → logits."""
        start = time.perf_counter_ns()
        feed = {embedding_name(m): embeddings[m] for m in self.modalities}
        feed["present"] = present.astype(np.float32)
        logits = self.runners[HEAD].infer(feed)["logits"]
        if timings is not None:
            timings["fusion_head"] = time.perf_counter_ns() - start
        return logits

    def run_batch(self, batch: Batch, timings: dict[str, int] | None = None,
                  concurrent: bool | None = None) -> np.ndarray:
        """Model compute only (encoders + head) on a preprocessed batch → logits."""
        return self.head(self.encode(batch, timings, concurrent), batch.present, timings)

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

    def predict(self, text: str | None = None, image: str | np.ndarray | None = None,
                audio: str | np.ndarray | None = None, sample_rate: int | None = None) -> Prediction:
        """Classify one sample given any subset of text, image (path/array), audio (path/array)."""
        sample = Sample(label=None, text=text, image=image, audio=audio, sample_rate=sample_rate)
        out = self.predict_batch([sample])
        probs = out.probabilities[0]
        idx = int(probs.argmax())
        labels = self.bundle.labels
        return Prediction(label=labels[idx], index=idx,
                          probabilities={labels[i]: float(p) for i, p in enumerate(probs)},
                          present=[m for m, ok in sample.present().items() if ok],
                          timings_ms={k: v / 1e6 for k, v in out.timings_ns.items()})

