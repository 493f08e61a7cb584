"""`mmedge eval`: accuracy and macro-F1 per modality subset of a bundle on a dataset (torch-free)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.manifest import resolve_dataset
from mmedge.data.sample import Dataset
from mmedge.data.sources import eval_split
from mmedge.errors import InputError
from mmedge.eval.metrics import confusion_matrix, evaluate_subsets, per_class_report
from mmedge.precision import Precision, PrecisionLike
from mmedge.progress import track
from mmedge.runtime.pipeline import Pipeline

# Samples per encoder call. 1 = per-request inference, the edge case: dynamic int8 (the transformer
# encoders' cpu flavour) scales activations per call, so its outputs depend on what shares the batch
# (on the edge preset's MiniLM, its error vs fp32 grows with the batch size).
EVAL_BATCH = 1


@dataclass
class EvalResult:
    """Figures of one backend/precision on one dataset."""

    backend: str
    precision: PrecisionLike
    subsets: dict[str, dict[str, float]]
    per_class: list[dict[str, float | str]]
    confusion: list[list[int]]
    logits: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (without raw logits)."""
        return {"backend": self.backend, "precision": Precision.parse(self.precision).to_json(),
                "subsets": self.subsets, "per_class": self.per_class, "confusion": self.confusion}


def align_labels(dataset: Dataset, labels: list[str]) -> np.ndarray:
    """Dataset label indices mapped onto the bundle's label order (InputError for unknown labels)."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for s in dataset.samples:
        if s.label is None:
            raise InputError(f"sample '{s.id}' has no label; eval needs labelled data")
        name = dataset.labels[s.label]
        if name not in index:
            raise InputError(f"label '{name}' of sample '{s.id}' is not one of the model's labels: {labels}")
        out.append(index[name])
    return np.asarray(out, dtype=np.int64)


def collect(pipe: Pipeline, dataset: Dataset, chunk: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Embeddings of every sample (encoders run once) and the availability mask."""
    parts: list[dict[str, np.ndarray]] = []
    present = []
    for start in track(range(0, len(dataset), chunk), "evaluating"):  # a bar with ETA in the CLI
        batch = pipe.preprocess(dataset.samples[start : start + chunk])
        parts.append(pipe.encode(batch))
        present.append(batch.present)
    return {m: np.concatenate([p[m] for p in parts]) for m in pipe.modalities}, np.concatenate(present)


def evaluate_pipeline(pipe: Pipeline, dataset: Dataset, backend: str, precision: PrecisionLike,
                      batch: int = EVAL_BATCH) -> EvalResult:
    """Encode once (`batch` samples per encoder call), then run the head under every modality subset."""
    labels = align_labels(dataset, pipe.bundle.labels)
    embeddings, available = collect(pipe, dataset, batch)

    def logits_fn(present: np.ndarray) -> np.ndarray:
        return pipe.head(embeddings, present)

    n = len(pipe.bundle.labels)
    subsets = evaluate_subsets(logits_fn, available, labels, pipe.modalities, n)
    logits = logits_fn(available)
    pred = logits.argmax(axis=1)
    return EvalResult(backend, precision, subsets, per_class_report(pred, labels, pipe.bundle.labels),
                      confusion_matrix(pred, labels, n).tolist(), logits)


def evaluate_bundle(bundle: str | Path | Bundle, data: str, split: str | None = None, backend: str = "onnxruntime",
                    precision: PrecisionLike = "fp32", threads: int | None = None, seed: int = 0,
                    batch: int = EVAL_BATCH) -> EvalResult:
    """Evaluate a bundle on `data` ('digits' or a manifest path; one without a split field is scored whole,
    unless it is the manifest the bundle was trained on: then `split` is the run's own split)."""
    b = Bundle.coerce(bundle)
    split, note = eval_split(data, split, b.provenance.get("data"))
    if note:
        logging.getLogger(__name__).warning("%s", note)
    dataset = resolve_dataset(data, split, seed, split_seed=b.split_seed)
    with Pipeline.from_bundle(b, backend=backend, precision=precision, threads=threads) as pipe:
        return evaluate_pipeline(pipe, dataset, backend, precision, batch)
