"""End-to-end parity: bundle + Pipeline logits against the trained torch model, on real partial-modality samples.

The reference is the model from the run directory, fed by the run's own preprocessing and a presence
mask computed from the samples here: a pipeline that builds its mask, preprocessing or routing wrongly
(e.g. all-ones `present`, a doubled image std in bundle.json, swapped embeddings) disagrees with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmedge import Pipeline
from mmedge.data.digits import load_digits
from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Sample
from mmedge.specs import MODALITIES
from mmedge.train.checkpoint import load_run

PATTERNS = [("text", "image", "audio"), ("image",), ("text", "audio"), ("audio",), ("text",), ("image", "audio"),
            ("text", "image")]


def partial_samples(n: int = 28) -> list[Sample]:
    """Real test-split samples, each keeping one pattern of modalities (every pattern several times)."""
    out = []
    for i, s in enumerate(load_digits("test", limit=n).samples):
        keep = PATTERNS[i % len(PATTERNS)]
        text = s.text or "an odd number"
        out.append(Sample(s.label, **{m: v for m, v in (("text", text), ("image", s.image), ("audio", s.audio))
                                      if m in keep}, sample_rate=s.sample_rate))
    return out


def torch_logits(run_dir: Path, samples: list[Sample]) -> np.ndarray:
    """The trained model on the run's preprocessing with the samples' own presence mask."""
    run = load_run(run_dir)
    modalities = list(run.config.model.modalities)
    batch = Preprocessor(modalities, run.preprocessing, root=run.root).batch(samples, fixed_text_length=True)
    present = np.array([[getattr(s, m) is not None for m in modalities] for s in samples], dtype=np.float32)
    inputs = {k: torch.from_numpy(v) for feed in batch.feeds.values() for k, v in feed.items()}
    with torch.inference_mode():
        return run.model.eval()(inputs, torch.from_numpy(present)).numpy()


@pytest.mark.parametrize("precision", ["fp32"])
def test_pipeline_matches_the_torch_model_on_partial_samples(tiny_run: Path, tiny_bundle_pristine: Path,
                                                             precision: str) -> None:
    samples = partial_samples()
    want = torch_logits(tiny_run, samples)
    with Pipeline.from_bundle(tiny_bundle_pristine, precision=precision) as pipe:
        got = pipe.predict_batch(samples).logits
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()
    # the check has teeth: dropping the mask (all modalities "present") changes predictions
    full = np.ones((len(samples), len(MODALITIES)), np.float32)
    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        masked = pipe.head(pipe.encode(pipe.preprocess(samples)), full)
    assert np.abs(masked - want).max() > 1e-2


def test_bundle_preprocessing_is_the_runs(tiny_run: Path, tiny_bundle_pristine: Path) -> None:
    run = json.loads((tiny_run / "run.json").read_text())["preprocessing"]
    bundle = json.loads((tiny_bundle_pristine / "bundle.json").read_text())["preprocessing"]
    for modality, spec in run.items():
        for key, value in spec.items():
            if key != "tokenizer":  # the file is copied into the bundle (its path differs)
                assert bundle[modality][key] == value, (modality, key)


def test_eval_cli_reproduces_training_metrics(tiny_run: Path, tiny_bundle_pristine: Path) -> None:
    from cli_helpers import invoke

    metrics = json.loads((tiny_run / "metrics.json").read_text())["test"]
    result = invoke("eval", tiny_bundle_pristine, "--json")
    assert result.exit_code == 0, result.output
    subsets = json.loads(result.output)[0]["subsets"]
    for name, figures in metrics.items():
        assert subsets[name]["accuracy"] == pytest.approx(figures["accuracy"], abs=1e-6), name
