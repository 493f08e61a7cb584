"""Robustness curves: accuracy as noise grows on one modality at a time (torch-free, over a Pipeline).

Noise is applied to the raw samples, before preprocessing, exactly as a degraded sensor would:
- image: additive Gaussian pixel noise, σ in 0..255 units, clipped to uint8;
- audio: additive white noise at a given SNR (dB) relative to the clip's own power;
- text: word deletion, each word dropped with the given probability (1.0 leaves an empty string).
Only the degraded modality is re-encoded per level; the other embeddings are computed once.
Each point reports the fused accuracy (every available modality, one degraded) and the accuracy
of the degraded modality alone, over the samples that carry that modality.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.data.audio import load_audio
from mmedge.data.image import load_image
from mmedge.data.manifest import resolve_dataset
from mmedge.data.sample import Dataset, Sample
from mmedge.errors import InputError
from mmedge.eval.evaluate import align_labels, collect
from mmedge.eval.metrics import accuracy, macro_f1
from mmedge.precision import PrecisionLike
from mmedge.runtime.pipeline import Pipeline

log = logging.getLogger(__name__)

DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "image": (16.0, 32.0, 64.0, 96.0, 128.0),
    "audio": (20.0, 10.0, 5.0, 0.0, -5.0, -10.0),
    "text": (0.25, 0.5, 0.75, 1.0),
}
UNITS: dict[str, str] = {"image": "pixel noise σ (0-255)", "audio": "SNR of added noise (dB)",
                         "text": "word deletion rate"}


@dataclass
class RobustnessCurve:
    """Accuracy per noise level on one modality; points[0] is the clean baseline (level None)."""

    modality: str
    unit: str
    points: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"modality": self.modality, "unit": self.unit, "points": self.points}


def noisy_image(image: np.ndarray | str, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 image plus Gaussian noise of std `sigma` (0..255 units), clipped."""
    arr = load_image(image) if isinstance(image, str) else np.asarray(image)
    noisy = arr.astype(np.float32) + rng.normal(0.0, sigma, size=arr.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def noisy_audio(audio: np.ndarray | str, sample_rate: int | None, snr_db: float,
                rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
    """Waveform plus white noise at `snr_db` relative to the clip's mean power."""
    if isinstance(audio, str):
        wave, sample_rate = load_audio(audio)
    else:
        wave = np.asarray(audio, dtype=np.float32)
    power = float(np.mean(wave.astype(np.float64) ** 2)) + 1e-12
    noise = rng.normal(0.0, np.sqrt(power / 10.0 ** (snr_db / 10.0)), size=wave.shape)
    return (wave + noise).astype(np.float32), sample_rate


def drop_words(text: str, rate: float, rng: np.random.Generator) -> str:
    """Delete each word with probability `rate`."""
    words = text.split()
    return " ".join(w for w in words if rng.random() >= rate)


def perturb(sample: Sample, modality: str, level: float, rng: np.random.Generator) -> Sample:
    """A copy of `sample` keeping only `modality`, degraded at `level`."""
    only = Sample(label=sample.label, id=sample.id)
    if modality == "image":
        return replace(only, image=noisy_image(sample.image, level, rng))  # type: ignore[arg-type]
    if modality == "audio":
        wave, rate = noisy_audio(sample.audio, sample.sample_rate, level, rng)  # type: ignore[arg-type]
        return replace(only, audio=wave, sample_rate=rate)
    if modality == "text":
        return replace(only, text=drop_words(sample.text or "", level, rng))
    raise InputError(f"unknown modality '{modality}' (choose from image, audio, text)")


def encode_degraded(pipe: Pipeline, samples: list[Sample], modality: str, level: float, seed: int,
                    chunk: int, stream: int = 0) -> np.ndarray:
    """Embeddings [N, D] of `modality` for degraded copies of `samples` (each with that modality)."""
    rng = np.random.default_rng([seed, pipe.modalities.index(modality), stream])
    parts = []
    for start in range(0, len(samples), chunk):
        noisy = [perturb(s, modality, level, rng) for s in samples[start : start + chunk]]
        batch = pipe.preprocessor.batch(noisy)  # no presence checks: only one modality on purpose
        parts.append(pipe.encode(batch)[modality])
    return np.concatenate(parts) if parts else np.zeros((0, pipe.embed_dim), dtype=np.float32)


def _point(pipe: Pipeline, embeddings: dict[str, np.ndarray], available: np.ndarray, labels: np.ndarray,
           j: int, n_classes: int, level: float | None) -> dict[str, Any]:
    rows = available[:, j] > 0
    alone = np.zeros_like(available)
    alone[:, j] = available[:, j]
    sub = {m: e[rows] for m, e in embeddings.items()}
    fused = pipe.head(sub, available[rows]).argmax(axis=1)
    single = pipe.head(sub, alone[rows]).argmax(axis=1)
    y = labels[rows]
    return {"level": level, "accuracy": accuracy(fused, y), "macro_f1": macro_f1(fused, y, n_classes),
            "alone_accuracy": accuracy(single, y), "n": int(rows.sum())}


def robustness_curves(pipe: Pipeline, dataset: Dataset, modalities: Sequence[str] | None = None,
                      levels: Mapping[str, Sequence[float]] | None = None, seed: int = 0,
                      chunk: int = 64) -> list[RobustnessCurve]:
    """One curve per modality: the clean point, then one point per noise level."""
    labels = align_labels(dataset, pipe.bundle.labels)
    clean, available = collect(pipe, dataset, chunk)
    chosen = list(modalities) if modalities is not None else list(pipe.modalities)
    unknown = [m for m in chosen if m not in pipe.modalities]
    if unknown:
        raise InputError(f"modalities {unknown} are not in this bundle ({', '.join(pipe.modalities)})")
    n_classes = len(pipe.bundle.labels)
    curves = []
    for m in chosen:
        j = pipe.modalities.index(m)
        rows = np.flatnonzero(available[:, j] > 0)
        curve = RobustnessCurve(m, UNITS[m], [_point(pipe, clean, available, labels, j, n_classes, None)])
        for k, level in enumerate((levels or DEFAULT_LEVELS).get(m, DEFAULT_LEVELS[m])):
            embeddings = dict(clean)
            embeddings[m] = clean[m].copy()
            samples = [dataset.samples[i] for i in rows]
            embeddings[m][rows] = encode_degraded(pipe, samples, m, level, seed, chunk, stream=k)
            curve.points.append(_point(pipe, embeddings, available, labels, j, n_classes, float(level)))
            log.info("robustness %s @ %g: accuracy %.4f", m, level, curve.points[-1]["accuracy"])
        curves.append(curve)
    return curves


def evaluate_robustness(bundle: Bundle | str | Path, data: str, split: str | None = "test",
                        backend: str = "onnxruntime",
                        precision: PrecisionLike = "fp32", modalities: Sequence[str] | None = None,
                        levels: Mapping[str, Sequence[float]] | None = None, threads: int | None = None,
                        seed: int = 0, limit: int | None = None) -> list[RobustnessCurve]:
    """Robustness curves of a bundle on `data` ('digits' or a manifest path)."""
    b = Bundle.coerce(bundle)
    dataset = resolve_dataset(data, split, seed, limit=limit, split_seed=b.split_seed)
    with Pipeline.from_bundle(b, backend=backend, precision=precision, threads=threads) as pipe:
        return robustness_curves(pipe, dataset, modalities, levels, seed)


def plot_robustness(curves: list[RobustnessCurve], path: str | Path, title: str = "") -> Path:
    """One panel per modality: fused and modality-alone accuracy against the noise level (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(4.2 * max(1, len(curves)), 3.6), squeeze=False)
    for ax, curve in zip(axes[0], curves, strict=False):
        ticks = ["clean" if p["level"] is None else f"{p['level']:g}" for p in curve.points]
        x = np.arange(len(ticks))
        ax.plot(x, [p["accuracy"] for p in curve.points], marker="o", label="fused (all available)")
        ax.plot(x, [p["alone_accuracy"] for p in curve.points], marker="s", ls="--", label=f"{curve.modality} alone")
        ax.set_xticks(x, ticks)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(curve.unit)
        ax.set_ylabel("accuracy")
        ax.set_title(f"noise on {curve.modality}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    from mmedge.eval.plots import save_figure

    return save_figure(fig, path)
