"""Fine-tuning modes as a registry: each turns (model, config) into FitPlans (one per phase).

Plans set requires_grad themselves (FitPlan.prepare, run by `fit`), so phases can follow each
other on the same model. Only encoders with pretrained weights (`pretrained = True`) are ever
frozen; from-scratch encoders (e.g. the edge audio CNN) train in every mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from torch import nn

from mmedge.config import TrainConfig
from mmedge.errors import ConfigError
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.cache import frozen_part
from mmedge.train.loop import FitPlan

log = logging.getLogger(__name__)
PlanBuilder = Callable[[MultimodalClassifier, TrainConfig], list[FitPlan]]


def pretrained_modalities(model: MultimodalClassifier) -> set[str]:
    """Modalities whose encoder carries pretrained weights (from-scratch encoders always train)."""
    return {m for m in model.modalities if getattr(model.encoder(m), "pretrained", False)}


def set_trainable(module: nn.Module, flag: bool) -> None:
    """Set requires_grad of every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(flag)


def freeze(module: nn.Module) -> None:
    """Stop gradients for every parameter of `module`."""
    set_trainable(module, False)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of `module` that require gradients."""
    return [p for p in module.parameters() if p.requires_grad]


def params_outside(module: nn.Module, exclude: Iterable[nn.Module]) -> list[nn.Parameter]:
    """Parameters of `module` that belong to none of the `exclude` submodules."""
    skip = {id(p) for sub in exclude for p in sub.parameters()}
    return [p for p in module.parameters() if id(p) not in skip]


def new_parameters(model: MultimodalClassifier, pretrained: set[str]) -> list[nn.Parameter]:
    """Head, from-scratch encoders and the projections of pretrained ones (everything but backbones)."""
    params = list(model.head.parameters())
    for m in model.modalities:
        enc = model.encoder(m)
        params += params_outside(enc, [frozen_part(enc)]) if m in pretrained else list(enc.parameters())
    return params


def log_scratch(model: MultimodalClassifier, pretrained: set[str], mode: str) -> None:
    """Say which encoders train from scratch whatever the mode."""
    scratch = [m for m in model.modalities if m not in pretrained]
    if scratch:
        log.info("%s: %s encoder(s) have no pretrained weights and train from scratch", mode,
                 ", ".join(scratch))


def full_plan(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """Everything trains; pretrained backbones at lr × encoder_lr_mult."""
    pretrained = pretrained_modalities(model)
    backbones = [frozen_part(model.encoder(m)) for m in sorted(pretrained)]
    groups: list[dict[str, object]] = [{"params": new_parameters(model, pretrained), "lr": cfg.lr}]
    groups += [{"params": list(b.parameters()), "lr": cfg.lr * cfg.encoder_lr_mult} for b in backbones]
    return [FitPlan(groups, phase="full", prepare=lambda: set_trainable(model, True))]


def frozen_plan(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """Pretrained backbones frozen (eval mode, features cached); projections, head and the rest train."""
    frozen = pretrained_modalities(model)
    log_scratch(model, frozen, "frozen")

    def prepare() -> None:
        set_trainable(model, True)
        for m in frozen:
            freeze(frozen_part(model.encoder(m)))

    prepare()
    groups: list[dict[str, object]] = [{"params": new_parameters(model, frozen), "lr": cfg.lr}]
    return [FitPlan(groups, frozen=frozen, phase="frozen", prepare=prepare)]


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
