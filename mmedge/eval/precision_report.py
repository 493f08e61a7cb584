"""Accuracy vs precision: accuracy, macro-F1, agreement with fp32, per-component error and size (torch-free).

Every (component, precision) runs once over the preprocessed data and is cached, so a report over
several precisions (or the search over per-component combinations) costs one pass per artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.preprocess import Batch, Preprocessor
from mmedge.data.sample import Dataset
from mmedge.errors import InputError
from mmedge.eval.compare import compare
from mmedge.eval.evaluate import EVAL_BATCH
from mmedge.eval.metrics import macro_f1
from mmedge.precision import Precision, PrecisionLike
from mmedge.specs import HEAD, embedding_name

log = logging.getLogger(__name__)


def precision_label(precision: PrecisionLike) -> str:
    """Display name: 'int8' or 'text=int8,image=fp16,…'."""
    return Precision.parse(precision).label


def resolve(bundle: Bundle, precision: PrecisionLike) -> dict[str, str]:
    """{component: artifact key} on ONNX Runtime CPU ('auto' reads `quantize --auto`'s choice)."""
    return Precision.parse(precision).resolve(bundle, "onnxruntime")


class ComponentOutputs:
    """Outputs of each (component, precision) on one dataset, computed on first use (ONNX Runtime CPU)."""

    def __init__(self, bundle: Bundle, dataset: Dataset, threads: int | None = None,
                 chunk: int = EVAL_BATCH) -> None:
        self.bundle, self.threads = bundle, threads
        self.modalities = list(bundle.modalities)
        bundle.verify_preprocessing()  # the tokenizer: confined and sha256-checked before it is opened
        pre = Preprocessor(self.modalities, bundle.preprocessing, root=bundle.root)
        samples = [s for s in dataset.samples if any(s.present().get(m) for m in self.modalities)]
        if not samples:
            raise InputError(f"dataset '{dataset.name}' has no sample with any of "
                             f"{', '.join(self.modalities)}")
        self.batches: list[Batch] = [pre.batch(samples[i : i + chunk]) for i in range(0, len(samples), chunk)]
        self.present = np.concatenate([b.present for b in self.batches])
        self.samples = samples
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def _runner(self, component: str, precision: str) -> Any:
        from mmedge.runtime.backends import make_runner
        from mmedge.runtime.options import RunnerOptions

        return make_runner(self.bundle, component, precision, RunnerOptions(threads=self.threads))

    def encoder(self, modality: str, precision: str) -> np.ndarray:
        """[N, D] embeddings (zeros for batches where the modality is absent, as the Pipeline does)."""
        key = (modality, precision)
        if key not in self._cache:
            j = self.modalities.index(modality)
            with self._runner(modality, precision) as runner:
                parts = []
                for b in self.batches:
                    if b.present[:, j].any():
                        parts.append(runner.infer(b.feeds[modality])[embedding_name(modality)])
                    else:
                        dim = int(runner.outputs[0].shape[1])
                        parts.append(np.zeros((len(b), dim), dtype=np.float32))
            self._cache[key] = np.concatenate(parts)
        return self._cache[key]

    def head(self, precision: str, embeddings: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of the fusion head at `precision` on given embeddings (not cached)."""
        with self._runner(HEAD, precision) as runner:
            out, start = [], 0
            for b in self.batches:
                stop = start + len(b)
                feed = {embedding_name(m): embeddings[m][start:stop] for m in self.modalities}
                feed["present"] = b.present.astype(np.float32)
                out.append(runner.infer(feed)["logits"])
                start = stop
        return np.concatenate(out)

    def logits(self, precisions: dict[str, str]) -> np.ndarray:
        """End-to-end logits with one precision per component."""
        emb = {m: self.encoder(m, precisions[m]) for m in self.modalities}
        key = ("logits:" + precision_label(precisions), "")
        if key not in self._cache:
            self._cache[key] = self.head(precisions[HEAD], emb)
        return self._cache[key]

    def fp32_embeddings(self) -> dict[str, np.ndarray]:
        """Reference embeddings of every modality."""
        return {m: self.encoder(m, "fp32") for m in self.modalities}


@dataclass
class PrecisionRow:
    """The figures of one precision (or per-component map) on one dataset."""

    label: str
    precisions: dict[str, str]
    accuracy: float
    macro_f1: float
    agreement: float
    components: dict[str, dict[str, float]] = field(default_factory=dict)
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"precision": self.label, "precisions": self.precisions, "accuracy": self.accuracy,
                "macro_f1": self.macro_f1, "agreement_with_fp32": self.agreement,
                "components": self.components, "bytes": self.bytes}


def component_diffs(outputs: ComponentOutputs, precisions: dict[str, str]) -> dict[str, dict[str, float]]:
    """Max/mean |Δ| of each component vs its fp32 output on the same (fp32) inputs; present rows only."""
    reference: dict[str, np.ndarray] = {}
    result: dict[str, np.ndarray] = {}
    for j, m in enumerate(outputs.modalities):
        rows = outputs.present[:, j] > 0
        if rows.any():
            reference[m], result[m] = outputs.encoder(m, "fp32")[rows], outputs.encoder(m, precisions[m])[rows]
    reference[HEAD] = outputs.logits(dict.fromkeys(precisions, "fp32"))
    result[HEAD] = (reference[HEAD] if precisions[HEAD] == "fp32"
                    else outputs.head(precisions[HEAD], outputs.fp32_embeddings()))
    return {name: figures.to_json() for name, figures in compare(reference, result).outputs.items()}


def row_for(outputs: ComponentOutputs, labels: np.ndarray, precision: PrecisionLike) -> PrecisionRow:
    """Figures of one precision against the fp32 reference."""
    chosen = resolve(outputs.bundle, precision)
    n = len(outputs.bundle.labels)
    pred = outputs.logits(chosen).argmax(axis=1)
    ref = outputs.logits(dict.fromkeys(chosen, "fp32")).argmax(axis=1)
    size = sum(outputs.bundle.artifact(c, p).bytes for c, p in chosen.items())
    return PrecisionRow(precision_label(precision), chosen, float((pred == labels).mean()),
                        macro_f1(pred, labels, n), float((pred == ref).mean()),
                        component_diffs(outputs, chosen), size)


def precision_report(bundle: str | Path | Bundle, data: str, split: str | None = None,
                     precisions: Sequence[PrecisionLike] | None = None, threads: int | None = None,
                     seed: int = 0, batch: int = EVAL_BATCH) -> list[PrecisionRow]:
    """One row per precision: accuracy, macro-F1, top-1 agreement with fp32, per-component |Δ|, bytes."""
    from mmedge.data.manifest import resolve_dataset
    from mmedge.eval.evaluate import align_labels

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    dataset = resolve_dataset(data, split, seed, split_seed=b.split_seed)
    outputs = ComponentOutputs(b, dataset, threads, batch)
    labels = align_labels(Dataset(dataset.name, dataset.labels, outputs.samples), b.labels)
    return [row_for(outputs, labels, p) for p in precisions or ["fp32"]]
