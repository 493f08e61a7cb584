"""ViT- and ConvNeXt-family `hf:` image encoders: CLI train → export → quantize → eval; partial and LoRA modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hf_helpers import check_eval, eval_cli, export_and_quantize, pretrained_state, train_cli

from mmedge.errors import InputError


@pytest.fixture(scope="module")
def vit_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-only model on the tiny ViT folder (mode full), exported and quantized."""
    root = tmp_path_factory.mktemp("hf_vit")
    run = train_cli(root / "run", manifests["image"], "image", f"hf:{hf_models['vit']}", "--mode", "full")
    return export_and_quantize(run, root / "bundle")


@pytest.fixture(scope="module")
def convnext_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-only model on the tiny ConvNeXt folder (mode lora), exported and quantized."""
    root = tmp_path_factory.mktemp("hf_convnext")
    run = train_cli(root / "run", manifests["image"], "image", f"hf:{hf_models['convnext']}", "--mode", "lora",
                    "--lora-rank", "2")
    return export_and_quantize(run, root / "bundle")


def test_vit_bundle_records_processor_and_parity(vit_bundle: Path, hf_models: dict[str, Path]) -> None:
    """The image spec is the ViT processor's (32², bilinear, its mean/std, RGB); fp32 ≤ 1e-4; fp16 + int8."""
    meta = json.loads((vit_bundle / "bundle.json").read_text())
    image = meta["preprocessing"]["image"]
    assert (image["size"], image["channels"], image["resize"]) == (32, 3, "bilinear")
    assert image["mean"] == pytest.approx([0.5, 0.4, 0.3]) and image["std"] == pytest.approx([0.25, 0.2, 0.3])
    assert image["hf"]["family"] == "vit" and image["hf"]["path"] == str(hf_models["vit"].resolve())
    arts = meta["components"]["image"]["artifacts"]
    assert arts["fp32"]["parity"]["max_abs_diff"] <= 1e-4 and {"fp16", "int8"} <= set(arts)


def test_vit_preprocessing_matches_the_hf_processor(vit_bundle: Path, hf_models: dict[str, Path]) -> None:
    """mmedge's torch-free preprocessing of an image = ViTImageProcessor's pixel_values (within 1e-5)."""
    import numpy as np
    from transformers import AutoImageProcessor

    from mmedge.bundle import Bundle
    from mmedge.data.preprocess import Preprocessor

    bundle = Bundle.load(vit_bundle)
    pre = Preprocessor(bundle.modalities, bundle.preprocessing, root=bundle.root)
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # at size: resize is identity
    ours = pre.image(rgb)
    theirs = AutoImageProcessor.from_pretrained(str(hf_models["vit"]))(rgb, return_tensors="np")["pixel_values"][0]
    assert np.abs(ours - theirs).max() <= 1e-5


def test_vit_eval_every_precision(vit_bundle: Path, manifests: dict[str, Path]) -> None:
    """`mmedge eval` runs fp32, fp16 and int8 of the ViT bundle."""
    check_eval(eval_cli(vit_bundle, manifests["image"]))


def test_vit_partial_trains_only_the_last_block(hf_models: dict[str, Path], manifests: dict[str, Path],
                                               tmp_path: Path) -> None:
    """--mode partial --partial-blocks 1: the last layer (+ final norm) moves, embeddings and layer 0 do not."""
    from safetensors.torch import load_file

    run = train_cli(tmp_path / "run", manifests["image"], "image", f"hf:{hf_models['vit']}", "--mode", "partial",
                    "--partial-blocks", "1")
    state = load_file(str(run / "model.safetensors"))
    original = pretrained_state(hf_models["vit"])
    prefix = "encoders.image.backbone.model."
    for key in ("embeddings.patch_embeddings.projection.weight", "layers.0.attention.q_proj.weight"):
        assert torch.equal(state[prefix + key], original[key]), key
    for key in ("layers.1.attention.q_proj.weight", "layernorm.weight"):
        assert not torch.equal(state[prefix + key], original[key]), key


def test_convnext_lora_bundle(convnext_bundle: Path, manifests: dict[str, Path]) -> None:
    """ConvNeXt in LoRA mode: bicubic processor recorded, no adapter left, fp32 ≤ 1e-4, every precision evaluates."""
    meta = json.loads((convnext_bundle / "bundle.json").read_text())
    image = meta["preprocessing"]["image"]
    assert (image["size"], image["resize"], image["hf"]["family"]) == (32, "bicubic", "convnext")
    assert meta["components"]["image"]["artifacts"]["fp32"]["parity"]["max_abs_diff"] <= 1e-4
    check_eval(eval_cli(convnext_bundle, manifests["image"]))


def test_vit_size_must_match_the_model(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """A processor size that the ViT's position embeddings cannot take is one InputError."""
    import shutil

    from mmedge.config import ModelConfig
    from mmedge.models.hf.resolve import resolve_hf_config

    folder = tmp_path / "vit"
    shutil.copytree(hf_models["vit"], folder)
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    pre["size"] = {"height": 48, "width": 48}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    cfg = ModelConfig(modalities=["image"])
    cfg.image.encoder = f"hf:{folder}"
    with pytest.raises(InputError, match="differs from the model's image_size 32"):
        resolve_hf_config(cfg)
