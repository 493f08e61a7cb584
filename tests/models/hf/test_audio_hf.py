"""wav2vec2-family `hf:` speech encoders: CLI train → export → quantize → eval; LoRA; in-graph normalization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_helpers import check_eval, eval_cli, export_and_quantize, make_wav2vec2, pretrained_state, train_cli


@pytest.fixture(scope="module")
def wav2vec2_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audio-only model on the tiny wav2vec2 folder (mode full), exported and quantized."""
    root = tmp_path_factory.mktemp("hf_wav2vec2")
    run = train_cli(root / "run", manifests["audio"], "audio", f"hf:{hf_models['wav2vec2']}", "--mode", "full")
    return export_and_quantize(run, root / "bundle")


def test_wav2vec2_bundle_records_rate_and_parity(wav2vec2_bundle: Path) -> None:
    """The audio spec takes the feature extractor's 16 kHz (8 kHz clips resampled); fp32 ≤ 1e-4; fp16 + int8."""
    meta = json.loads((wav2vec2_bundle / "bundle.json").read_text())
    audio = meta["preprocessing"]["audio"]
    assert audio["sample_rate"] == 16000
    assert audio["hf"]["family"] == "wav2vec2" and "unit variance" in audio["hf"]["in_graph"]
    arts = meta["components"]["audio"]["artifacts"]
    assert arts["fp32"]["parity"]["max_abs_diff"] <= 1e-4 and {"fp16", "int8"} <= set(arts)
    assert meta["components"]["audio"]["inputs"][0]["shape"] == ["batch", 16000]


def test_wav2vec2_eval_every_precision(wav2vec2_bundle: Path, manifests: dict[str, Path]) -> None:
    """`mmedge eval` runs fp32, fp16 and int8 of the wav2vec2 bundle."""
    check_eval(eval_cli(wav2vec2_bundle, manifests["audio"]))


def test_wav2vec2_graph_normalizes_each_clip(wav2vec2_bundle: Path) -> None:
    """The exported graph normalizes per clip: a clip 20 dB quieter gives the same embedding (fp32 and fp16)."""
    import onnxruntime as ort

    wave = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.3
    arts = json.loads((wav2vec2_bundle / "bundle.json").read_text())["components"]["audio"]["artifacts"]
    for name in (arts["fp32"]["file"], arts["fp16"]["file"]):
        session = ort.InferenceSession(str(wav2vec2_bundle / name), providers=["CPUExecutionProvider"])
        loud, quiet = (session.run(None, {"waveform": w})[0] for w in (wave, wave * 0.1))
        assert np.abs(loud - quiet).max() <= 2e-3 * max(1.0, float(np.abs(loud).max())), name


def test_wav2vec2_normalization_matches_the_feature_extractor() -> None:
    """ClipNorm = Wav2Vec2FeatureExtractor's zero-mean unit-variance normalization."""
    from transformers import Wav2Vec2FeatureExtractor

    from mmedge.models.hf.audio import ClipNorm

    wave = np.random.default_rng(1).standard_normal(4000).astype(np.float32) * 0.05 + 0.01
    theirs = Wav2Vec2FeatureExtractor(do_normalize=True)(wave, sampling_rate=16000, return_tensors="np")
    ours = ClipNorm()(torch.from_numpy(wave)[None]).numpy()[0]
    assert np.abs(ours - theirs["input_values"][0]).max() <= 1e-4


def test_wav2vec2_lora_and_hubert_partial(hf_models: dict[str, Path], manifests: dict[str, Path],
                                          tmp_path: Path) -> None:
    """LoRA on wav2vec2 moves attention weights but not the conv feature encoder; HuBERT trains in partial mode."""
    from safetensors.torch import load_file

    run = train_cli(tmp_path / "w2v", manifests["audio"], "audio", f"hf:{hf_models['wav2vec2']}", "--mode", "lora",
                    "--lora-rank", "2")
    state, original = load_file(str(run / "model.safetensors")), pretrained_state(hf_models["wav2vec2"])
    prefix = "encoders.audio.backbone.model."
    attention = next(k for k in original if k.startswith("encoder.layers.0.attention.") and k.endswith("weight")
                     and "q_proj" in k)
    conv = next(k for k in original if k.startswith("feature_extractor.") and k.endswith("conv.weight"))
    assert not torch.equal(state[prefix + attention], original[attention])
    assert torch.equal(state[prefix + conv], original[conv])
    hubert = make_wav2vec2(tmp_path / "hubert", hubert=True)
    run = train_cli(tmp_path / "hub", manifests["audio"], "audio", f"hf:{hubert}", "--mode", "partial")
    meta = json.loads((run / "run.json").read_text())
    assert meta["preprocessing"]["audio"]["hf"]["model_type"] == "hubert"
