"""Whisper's encoder via `hf:`: the in-graph log-mel equals WhisperFeatureExtractor; CLI pipeline; partial mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_helpers import check_eval, eval_cli, export_and_quantize, pretrained_state, train_cli

from mmedge.errors import InputError


@pytest.fixture(scope="module")
def whisper_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audio-only model on the tiny Whisper folder (mode partial: last layer + final norm), quantized."""
    root = tmp_path_factory.mktemp("hf_whisper")
    run = train_cli(root / "run", manifests["audio"], "audio", f"hf:{hf_models['whisper']}", "--mode", "partial")
    return export_and_quantize(run, root / "bundle")


def test_whisper_logmel_matches_the_feature_extractor(hf_models: dict[str, Path]) -> None:
    """WhisperLogMel (conv/matmul ops) = WhisperFeatureExtractor's log-mel, on speech-like and quiet clips."""
    from transformers import WhisperFeatureExtractor

    from mmedge.models.hf.folder import hf_folder
    from mmedge.models.hf.whisper import whisper_frontend

    extractor = WhisperFeatureExtractor.from_pretrained(str(hf_models["whisper"]))
    frontend = whisper_frontend(hf_folder(f"hf:{hf_models['whisper']}", "audio"))
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 1e-3
    for wave in (tone, noise, np.pad(tone[:4000], (0, 12000))):
        theirs = extractor(wave, sampling_rate=16000, padding="max_length", max_length=16000,
                           return_tensors="np")["input_features"][0]
        with torch.no_grad():
            ours = frontend(torch.from_numpy(wave)[None]).numpy()[0]
        assert ours.shape == theirs.shape == (80, 100)
        assert np.abs(ours - theirs).max() <= 1e-4


def test_whisper_bundle_parity_and_spec(whisper_bundle: Path) -> None:
    """fp32 ≤ 1e-4 against torch with the front-end in the graph; the spec names it; fp16 + int8 written."""
    meta = json.loads((whisper_bundle / "bundle.json").read_text())
    audio = meta["preprocessing"]["audio"]
    assert audio["sample_rate"] == 16000 and audio["clip_seconds"] == 1.0
    assert audio["hf"]["family"] == "whisper" and audio["hf"]["in_graph"].startswith("Whisper log-mel")
    arts = meta["components"]["audio"]["artifacts"]
    assert arts["fp32"]["parity"]["max_abs_diff"] <= 1e-4 and {"fp16", "int8"} <= set(arts)
    import onnx

    ops = {n.op_type for n in onnx.load(str(whisper_bundle / "audio.onnx")).graph.node}
    assert {"Conv", "MatMul", "Log"} <= ops and not ops & {"STFT", "DFT"}


def test_whisper_eval_every_precision(whisper_bundle: Path, manifests: dict[str, Path]) -> None:
    """`mmedge eval` runs fp32, fp16 and int8 of the Whisper bundle."""
    check_eval(eval_cli(whisper_bundle, manifests["audio"]))


def test_whisper_partial_froze_the_early_layers(whisper_bundle: Path, hf_models: dict[str, Path]) -> None:
    """--mode partial (1 block): the input convs and layer 0 are the folder's, the last layer moved."""
    from safetensors.torch import load_file

    state = load_file(str(whisper_bundle / "torch" / "model.safetensors"))
    original = pretrained_state(hf_models["whisper"])
    prefix = "encoders.audio.backbone.encoder."
    for key in ("conv1.weight", "layers.0.fc1.weight"):
        assert torch.equal(state[prefix + key], original[f"encoder.{key}"]), key
    for key in ("layers.1.fc1.weight", "layer_norm.weight"):
        assert not torch.equal(state[prefix + key], original[f"encoder.{key}"]), key
    assert not [k for k in state if ".decoder." in k]  # only the encoder is kept


def test_whisper_clip_longer_than_its_positions(hf_models: dict[str, Path]) -> None:
    """A clip over 2 × max_source_positions mel frames is one InputError naming the longest clip."""
    from mmedge.config import ModelConfig
    from mmedge.models.hf.resolve import resolve_hf_config

    cfg = ModelConfig(modalities=["audio"])
    cfg.audio.encoder, cfg.audio.clip_seconds = f"hf:{hf_models['whisper']}", 2.0
    with pytest.raises(InputError, match=r"\(50 positions = 1 s\)"):
        resolve_hf_config(cfg)


def test_whisper_int8_for_tensorrt(whisper_bundle: Path) -> None:
    """`quantize --target tensorrt`: the Conv1d layers get GPTQ-rounded int8 weights and pass the Q/DQ rules."""
    from hf_helpers import run_cli

    run_cli("quantize", whisper_bundle, "--precision", "int8", "--target", "tensorrt", "--samples", "16")
    art = json.loads((whisper_bundle / "bundle.json").read_text())["components"]["audio"]["artifacts"]["int8-trt"]
    assert art["settings"]["qdq_check"] == "passed" and art["settings"]["weight_rounding"]["method"] == "gptq"
    assert art["parity"]["max_abs_diff"] < 0.1  # tiny random model: int8 stays close to fp32


def test_gptq_patches_of_a_conv1d_reproduce_it() -> None:
    """weight_rounding.patches on a strided, padded Conv1d: patches @ Wᵀ equals the convolution's output."""
    from onnx import helper

    from mmedge.quantize.weight_rounding import WeightedLayer, grouped_weight, patches

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 37)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3], pads=[1, 1], strides=[2])
    layer = WeightedLayer(node, "w", 0, 1)
    cols = patches(layer, x, (3,))  # [groups, rows, columns]
    got = cols[0] @ grouped_weight(layer, w)[0].T  # [n * positions, out]
    with torch.no_grad():
        want = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1)
    assert np.abs(got - want.permute(0, 2, 1).reshape(-1, 6).numpy()).max() <= 1e-4
