"""The served model: Triton requests (BYTES text/image/audio) → one batched Pipeline call → label, index, probs.

Triton's dynamic batcher hands the callable several requests at once; their rows go through the
Pipeline as one batch. A bad request never fails the good ones batched with it: when every request of
a call is bad the call raises (the client gets Triton's error with the one-line reason); otherwise a
bad request's rows answer index -1, label "" and the reason in the `error` output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmedge.data.sample import Sample
from mmedge.errors import InputError
from mmedge.runtime.pipeline import Pipeline
from mmedge.serve.decode import INPUTS, decode_request

log = logging.getLogger(__name__)
OUTPUTS: tuple[str, ...] = ("label", "index", "probabilities", "error")


@dataclass(frozen=True)
class TensorInfo:
    """One served tensor: name, numpy dtype (bytes for Triton BYTES) and per-row shape."""

    name: str
    dtype: Any
    shape: tuple[int, ...]
    optional: bool = False


def served_inputs() -> list[TensorInfo]:
    """The served inputs: one encoded BYTES element per row each, every one optional."""
    return [TensorInfo(name, bytes, (1,), optional=True) for name in INPUTS]


def served_outputs(n_labels: int) -> list[TensorInfo]:
    """The served outputs: label (BYTES), index (INT64), probabilities (FP32 [n_labels]), error (BYTES)."""
    return [TensorInfo("label", bytes, (1,)), TensorInfo("index", np.int64, (1,)),
            TensorInfo("probabilities", np.float32, (n_labels,)), TensorInfo("error", bytes, (1,))]


class PipelineModel:
    """The inference callable of one model instance (it owns one Pipeline)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        audio = pipeline.bundle.preprocessing.audio
        self.clip_seconds = audio.clip_seconds if audio is not None else None
        self.labels = list(pipeline.bundle.labels)

    def decode(self, inputs: Mapping[str, np.ndarray]) -> list[Sample]:
        """One request → validated Samples (InputError with the reason)."""
        samples = decode_request(inputs, self.clip_seconds)
        self.pipeline.check_samples(samples)
        return samples

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """Triton requests (mappings of input name → array [rows, 1]) → one output dict per request."""
        decoded: list[list[Sample] | InputError] = []
        rows: list[int] = []  # a bad request still answers one row per row it sent (Triton checks the shapes)
        for request in requests:
            data = _data(request)
            rows.append(_row_count(data))
            try:
                decoded.append(self.decode(data))
            except InputError as exc:
                decoded.append(exc)
        errors = [d for d in decoded if isinstance(d, InputError)]
        if len(errors) == len(decoded):
            raise InputError(str(errors[0]) if len(errors) == 1 else "; ".join(
                f"request {i}: {e}" for i, e in enumerate(errors)))
        if errors:
            log.warning("%d of %d batched requests were bad: %s", len(errors), len(decoded), errors[0])
        good = [s for d in decoded if not isinstance(d, InputError) for s in d]
        probs = self.pipeline.predict_batch(good).probabilities
        return self._split(decoded, rows, probs)

    def _split(self, decoded: list[list[Sample] | InputError], rows: list[int],
               probs: np.ndarray) -> list[dict[str, np.ndarray]]:
        """The batch's probabilities → one output dict per request (bad requests: their error)."""
        out, start = [], 0
        for d, n in zip(decoded, rows, strict=True):
            if isinstance(d, InputError):
                out.append(self._error_rows(d, n))
                continue
            p = probs[start : start + len(d)]
            start += len(d)
            idx = p.argmax(axis=1).astype(np.int64)
            out.append({"label": np.array([[self.labels[i].encode()] for i in idx], dtype=np.object_),
                        "index": idx.reshape(-1, 1), "probabilities": p.astype(np.float32),
                        "error": np.full((len(d), 1), b"", dtype=np.object_)})
        return out

    def _error_rows(self, exc: InputError, n: int) -> dict[str, np.ndarray]:
        """The outputs of a bad request batched with good ones: `n` rows of index -1 and the reason."""
        return {"label": np.full((n, 1), b"", dtype=np.object_), "index": np.full((n, 1), -1, dtype=np.int64),
                "probabilities": np.zeros((n, len(self.labels)), dtype=np.float32),
                "error": np.full((n, 1), str(exc).encode(), dtype=np.object_)}


def _row_count(data: Mapping[str, np.ndarray]) -> int:
    """Rows of a request as Triton batched it (the first input's leading dim; 1 if it has none)."""
    for value in data.values():
        shape = np.shape(value)
        return int(shape[0]) if shape else 1
    return 1


def _data(request: Any) -> Mapping[str, np.ndarray]:
    """A PyTriton Request's input arrays (a plain mapping passes through)."""
    data = getattr(request, "data", request)
    return {name: data[name] for name in data}
