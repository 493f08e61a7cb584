"""Every model_type each family claims: built from a tiny config, exported (ORT = torch ≤ 1e-4), blocks cover it."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_helpers import save_tokenizer

from mmedge.config import ModelConfig
from mmedge.exporters.onnx_export import export_module
from mmedge.models.encoders import build_encoder
from mmedge.models.hf.folder import FAMILIES
from mmedge.specs import TensorSpec

LAYERS = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SPEECH = {"hidden_size": 32, **LAYERS, "conv_dim": (16, 16, 16), "conv_stride": (5, 4, 4), "conv_kernel": (10, 4, 4),
          "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
TINY: dict[str, dict[str, object]] = {
    "roberta": {"hidden_size": 32, **LAYERS, "max_position_embeddings": 66},
    "xlm-roberta": {"hidden_size": 32, **LAYERS, "max_position_embeddings": 66},
    "electra": {"hidden_size": 32, "embedding_size": 16, **LAYERS, "max_position_embeddings": 64},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 64},
    "deit": {"image_size": 32, "patch_size": 8, "hidden_size": 32, **LAYERS},
    "convnextv2": {"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "image_size": 32},
    "hubert": SPEECH,
    "wavlm": {**SPEECH, "num_buckets": 16, "max_bucket_distance": 32},
    "data2vec-audio": {**SPEECH, "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5},
}
TESTED_ELSEWHERE = {"bert", "vit", "convnext", "wav2vec2", "whisper"}
MEMBERS = [(m, t) for m, fams in FAMILIES.items() for types in fams.values() for t in types
           if t not in TESTED_ELSEWHERE]


def make_member(model_type: str, modality: str, folder: Path, hf_models: dict[str, Path]) -> Path:
    """A tiny random `model_type` saved to `folder` with its modality's preprocessing file."""
    from transformers import AutoConfig, AutoModel

    folder.mkdir(parents=True)
    extra: dict[str, object] = {}
    if modality == "text":
        extra["vocab_size"] = save_tokenizer(folder)
    else:
        donor = hf_models["vit" if modality == "image" else "wav2vec2"]
        shutil.copy(donor / "preprocessor_config.json", folder / "preprocessor_config.json")
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **TINY[model_type], **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


def example(modality: str, enc: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """Inputs with a padded text row / a real-valued image or waveform."""
    gen = torch.Generator().manual_seed(0)
    if modality == "text":
        ids = torch.randint(5, 30, (3, 9), generator=gen)
        mask = torch.ones(3, 9, dtype=torch.int64)
        mask[1, 4:] = 0
        return ids * mask, mask
    spec = enc.input_specs()[0]  # type: ignore[operator]
    shape = tuple(3 if d == "batch" else d for d in spec.shape)
    return (torch.randn(*shape, generator=gen),)  # type: ignore[misc]


@pytest.mark.parametrize(("modality", "model_type"), MEMBERS)
def test_family_member_exports_and_has_blocks(modality: str, model_type: str, hf_models: dict[str, Path],
                                              tmp_path: Path) -> None:
    """Built through the registry from hf:PATH; ONNX Runtime = torch (≤ 1e-4); blocks hold ≥ 90 % of the weights."""
    import onnxruntime as ort

    folder = make_member(model_type, modality, tmp_path / model_type, hf_models)
    cfg = ModelConfig(modalities=[modality], embed_dim=8)
    getattr(cfg, modality).encoder = f"hf:{folder}"
    if modality == "image":
        cfg.image.channels, cfg.image.size, cfg.image.mean, cfg.image.std = 3, 32, [0.5] * 3, [0.5] * 3
    if modality == "audio":
        cfg.audio.sample_rate = 16000
    enc = build_encoder(modality, cfg).eval()
    assert enc.source["model_type"] == model_type  # type: ignore[index]
    inputs = example(modality, enc)
    out = [TensorSpec("embedding", "float32", ("batch", 8), {"batch": (1, 1, 8)})]
    path = export_module(enc, enc.input_specs(), out, inputs, tmp_path / "enc.onnx")
    with torch.no_grad():
        expected = enc(*inputs).numpy()
    feed = {s.name: x.numpy() for s, x in zip(enc.input_specs(), inputs, strict=True)}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert np.abs(got - expected).max() <= 1e-4
    blocks = enc.blocks()
    in_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    total = sum(p.numel() for p in enc.backbone.parameters())  # type: ignore[union-attr]
    assert len(blocks) >= 3 and in_blocks >= 0.9 * total, (len(blocks), in_blocks, total)
