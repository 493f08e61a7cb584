"""LoRA mode on EfficientNet-Lite0 at 32×32: adapters train, merge to plain weights, ONNX = unmerged torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# efficientnet-lite-pytorch and peft come with the train extra: a missing one fails here, never skips
import efficientnet_lite_pytorch  # noqa: F401
import numpy as np
import peft  # noqa: F401
import pytest
import torch
from ft_helpers import N_CLASSES, make_model, small_model_config, synthetic_split, train_config

from mmedge.exporters.onnx_export import export_module
from mmedge.models.classifier import MultimodalClassifier
from mmedge.specs import TensorSpec
from mmedge.train.loop import fit
from mmedge.train.modes import build_plans
from mmedge.train.peft_modes import lora_targets


def effnet_config() -> object:
    """Image-only model config with EfficientNet-Lite0 at 32×32 RGB."""
    cfg = small_model_config(("image",))
    cfg.image.encoder, cfg.image.size, cfg.image.channels = "efficientnet_lite0", 32, 3
    cfg.image.mean, cfg.image.std = [0.5] * 3, [0.5] * 3
    return cfg


def test_lora_targets_are_linear_and_pointwise_convs() -> None:
    """Only Linear and 1×1 non-grouped convs are targeted (no stem, no depthwise)."""
    model = make_model(set(), effnet_config())  # type: ignore[arg-type]
    backbone: Any = model.encoder("image").backbone  # type: ignore[union-attr]
    names = lora_targets(backbone)
    modules = dict(backbone.named_modules())
    assert names and all(modules[n].kernel_size == (1, 1) and modules[n].groups == 1 for n in names)
    assert "net._conv_stem" not in names and "net._conv_head" in names


def test_lora_merged_onnx_matches_unmerged_torch(tmp_path: Path) -> None:
    """Train adapters 2 steps, then: merged state dict loads into the plain model and ONNX ≤ 1e-4."""
    cfg = effnet_config()
    model = make_model(set(), cfg)  # type: ignore[arg-type]
    train = synthetic_split(32, 0, "t", image_size=32, channels=3, n_modalities=1)
    val = synthetic_split(8, 1, "v", image_size=32, channels=3, n_modalities=1)
    tcfg = train_config("lora", epochs=1, lora_rank=4)
    [plan] = build_plans(model, tcfg)
    merge, plan.finalize = plan.finalize, None
    backbone: Any = model.encoder("image").backbone  # type: ignore[union-attr]
    assert all(p.requires_grad == ("lora_" in n) for n, p in backbone.named_parameters())
    fit(model, train, val, tcfg, plan, N_CLASSES)
    lora_b = [p for n, p in backbone.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.detach().abs().max()) > 0 for p in lora_b), "adapters did not train"

    enc = model.encoder("image").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        unmerged = enc(x).numpy()
    assert merge is not None
    merge()
    state = model.state_dict()
    assert not any("lora" in k or "base_layer" in k for k in state)
    plain = MultimodalClassifier(cfg, N_CLASSES, 0)  # type: ignore[arg-type]
    plain.load_state_dict(state)  # strict: the merged checkpoint is a plain one

    import onnxruntime as ort

    specs = enc.input_specs()
    out = [TensorSpec("image_embedding", "float32", ("batch", 16))]
    path = export_module(plain.encoder("image"), specs, out, (x,), tmp_path / "image.onnx")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x.numpy()})
    assert np.abs(got[0] - unmerged).max() <= 1e-4


@pytest.mark.slow
def test_lora_run_exports_plain_bundle(tmp_path: Path) -> None:
    """train_run in lora mode → a plain checkpoint (load_run) → export_run parity ≤ 1e-4 per component."""
    from mmedge.exporters.export_run import export_run
    from mmedge.models.presets import preset_config
    from mmedge.train.checkpoint import load_run
    from mmedge.train.run import train_run

    cfg = preset_config("tiny")
    cfg.model.modalities = ["text", "image"]
    cfg.model.image = effnet_config().image  # type: ignore[attr-defined]
    cfg.model.image.encoder = "efficientnet_lite0"
    cfg.limit, cfg.train.mode, cfg.train.epochs, cfg.train.lora_rank = 32, "lora", 1, 4
    result = train_run(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result.metrics["phases"] == ["lora"]
    run = load_run(tmp_path / "run")
    assert not any("lora" in k for k in run.model.state_dict())
    bundle = export_run(tmp_path / "run", tmp_path / "bundle", samples=16)
    for comp in bundle.components.values():
        assert comp.artifacts["fp32"].parity["max_abs_diff"] <= 1e-4
