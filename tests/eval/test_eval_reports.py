"""Evaluation extras: perturbations, robustness curves over a bundle, confusion/robustness PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmedge.data.sample import Sample
from mmedge.eval.plots import plot_confusion, write_eval_report
from mmedge.eval.robustness import drop_words, evaluate_robustness, noisy_audio, noisy_image, perturb, plot_robustness

PNG = b"\x89PNG\r\n\x1a\n"


def test_image_noise() -> None:
    """σ = 0 is the identity; σ > 0 changes pixels but stays uint8 in range."""
    rng = np.random.default_rng(0)
    image = np.full((8, 8), 128, dtype=np.uint8)
    assert np.array_equal(noisy_image(image, 0.0, rng), image)
    noisy = noisy_image(image, 50.0, rng)
    assert noisy.dtype == np.uint8 and noisy.shape == image.shape and not np.array_equal(noisy, image)


def test_audio_noise_hits_the_snr() -> None:
    """The added noise has the requested power ratio to the clip."""
    wave = np.sin(np.linspace(0, 2000, 80000)).astype(np.float32)
    noisy, rate = noisy_audio(wave, 8000, 0.0, np.random.default_rng(0))
    noise = noisy - wave
    snr = 10 * np.log10(np.mean(wave**2) / np.mean(noise**2))
    assert rate == 8000 and abs(snr) < 0.1


def test_word_deletion_and_perturb() -> None:
    """Rate 0 keeps every word, 1 none; perturb keeps only the degraded modality."""
    rng = np.random.default_rng(0)
    assert drop_words("an even number", 0.0, rng) == "an even number"
    assert drop_words("an even number", 1.0, rng) == ""
    sample = Sample(label=3, text="odd", image=np.zeros((4, 4), np.uint8), audio=np.zeros(80, np.float32),
                    sample_rate=8000)
    only = perturb(sample, "image", 10.0, rng)
    assert only.present() == {"text": False, "image": True, "audio": False} and only.label == 3


def test_confusion_png(tmp_path: Path) -> None:
    """A PNG is written atomically; a wrongly shaped matrix is refused."""
    path = plot_confusion([[3, 1, 0], [0, 2, 2], [1, 0, 5]], ["a", "b", "c"], tmp_path / "cm.png", "test")
    assert path.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="3x3"):
        plot_confusion([[1, 2]], ["a", "b", "c"], tmp_path / "bad.png")


def test_robustness_and_report_on_tiny_bundle(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    """Curves for every modality (clean point first), then report files with both PNGs."""
    from mmedge.data.manifest import resolve_dataset
    from mmedge.eval.evaluate import evaluate_pipeline
    from mmedge.runtime.pipeline import Pipeline

    levels = {"image": (64.0, 255.0), "audio": (0.0, -20.0), "text": (0.5, 1.0)}
    curves = evaluate_robustness(tiny_bundle_pristine, "digits", levels=levels, limit=40)
    assert [c.modality for c in curves] == ["text", "image", "audio"]
    for curve in curves:
        assert curve.points[0]["level"] is None and len(curve.points) == 3
        assert all(0.0 <= p["accuracy"] <= 1.0 and 0.0 <= p["alone_accuracy"] <= 1.0 for p in curve.points)
    image = curves[1]
    assert image.points[0]["n"] == 40
    assert image.points[-1]["alone_accuracy"] <= image.points[0]["alone_accuracy"] + 0.2  # noise hurts
    assert plot_robustness(curves, tmp_path / "r.png").read_bytes().startswith(PNG)

    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        result = evaluate_pipeline(pipe, resolve_dataset("digits", "test", limit=40), "onnxruntime", "fp32")
        labels = pipe.bundle.labels
    files = write_eval_report(result, tmp_path / "report", labels, curves, "tiny")
    assert {p.name for p in files.values()} == {"confusion.png", "per_class.json", "subsets.json",
                                                "robustness.png", "robustness.json"}
