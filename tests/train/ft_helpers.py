"""Helpers for the fine-tuning tests: small real models and synthetic splits (seconds, no dataset)."""

from __future__ import annotations

import torch

from mmedge.config import ModelConfig, TrainConfig
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.tensors import SplitTensors

N_CLASSES = 4
VOCAB = 40
SEQ = 8


def small_model_config(modalities: tuple[str, ...] = ("text", "image", "audio")) -> ModelConfig:
    """The tiny preset's encoders, made smaller."""
    cfg = ModelConfig(modalities=list(modalities), embed_dim=16, head_hidden=16)
    cfg.text.max_length = SEQ
    return cfg


def synthetic_split(n: int, seed: int, name: str = "synthetic", image_size: int = 32, channels: int = 1,
                    samples: int = 8000, n_modalities: int = 3) -> SplitTensors:
    """Random inputs for every tiny encoder, all modalities available, N_CLASSES labels."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, SEQ, dtype=torch.int64)
    mask[: n // 2, SEQ // 2 :] = 0  # some padded rows
    inputs = {
        "input_ids": torch.randint(4, VOCAB, (n, SEQ), generator=gen) * mask,
        "attention_mask": mask,
        "pixel_values": torch.randn(n, channels, image_size, image_size, generator=gen),
        "waveform": 0.1 * torch.randn(n, samples, generator=gen),
    }
    labels = torch.arange(n) % N_CLASSES
    return SplitTensors(inputs, torch.ones(n, n_modalities), labels, name)


def make_model(pretrained: set[str], cfg: ModelConfig | None = None) -> MultimodalClassifier:
    """A small classifier whose encoders in `pretrained` claim pretrained weights."""
    torch.manual_seed(0)
    model = MultimodalClassifier(cfg or small_model_config(), N_CLASSES, VOCAB)
    for m in pretrained:
        setattr(model.encoder(m), "pretrained", True)  # noqa: B010  (the attribute modes.py reads)
    return model


def train_config(mode: str, **overrides: object) -> TrainConfig:
    """Few epochs, small batches, no early stop."""
    cfg = TrainConfig(mode=mode, epochs=2, batch_size=16, lr=1e-2, patience=10, lp_epochs=2)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two snapshots are exactly equal."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def splits() -> tuple[SplitTensors, SplitTensors]:
    """(train, val) synthetic splits."""
    return synthetic_split(32, 0, "synthetic-train"), synthetic_split(16, 1, "synthetic-val")
