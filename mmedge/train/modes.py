"""Fine-tuning modes as a registry: each turns (model, config) into a FitPlan (or phases of plans)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mmedge.config import TrainConfig
from mmedge.errors import ConfigError
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.loop import FitPlan

PlanBuilder = Callable[[MultimodalClassifier, TrainConfig], list[FitPlan]]


def pretrained_modalities(model: MultimodalClassifier) -> set[str]:
    """Modalities whose encoder carries pretrained weights (from-scratch encoders always train)."""
    return {m for m in model.modalities if getattr(model.encoder(m), "pretrained", False)}


def freeze(module: nn.Module) -> None:
    """Stop gradients for every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(False)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of `module` that require gradients."""
    return [p for p in module.parameters() if p.requires_grad]


def full_plan(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """Everything trains; pretrained encoders at lr × encoder_lr_mult."""
    pretrained = pretrained_modalities(model)
    groups: list[dict[str, object]] = [{"params": trainable(model.head), "lr": cfg.lr}]
    for m in model.modalities:
        lr = cfg.lr * (cfg.encoder_lr_mult if m in pretrained else 1.0)
        groups.append({"params": trainable(model.encoder(m)), "lr": lr})
    return [FitPlan(groups)]


def frozen_plan(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """Pretrained encoders frozen (eval mode, embeddings cached); the rest trains."""
    frozen = pretrained_modalities(model)
    for m in frozen:
        freeze(model.encoder(m))
    params = trainable(model.head) + [p for m in model.modalities if m not in frozen
                                      for p in trainable(model.encoder(m))]
    return [FitPlan([{"params": params, "lr": cfg.lr}], frozen=frozen)]


MODES: dict[str, PlanBuilder] = {"full": full_plan, "frozen": frozen_plan}


def register_mode(name: str, builder: PlanBuilder) -> None:
    """Add a fine-tuning mode."""
    MODES[name] = builder


def build_plans(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """The phases of the configured mode."""
    if cfg.mode not in MODES:
        import mmedge.train.peft_modes  # noqa: F401  (registers lp-ft, partial, lora)
    builder = MODES.get(cfg.mode)
    if builder is None:
        raise ConfigError(f"unknown training mode '{cfg.mode}' (choose from: {', '.join(sorted(MODES))})")
    return builder(model, cfg)
