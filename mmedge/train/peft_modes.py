"""Fine-tuning modes beyond full/frozen: lp-ft, partial and LoRA (registered on import).

- lp-ft: phase 1 linear probe (backbones frozen and cached, `lp_epochs`), phase 2 full fine-tune
  with the probed parts (backbones, projections, head) at lr × encoder_lr_mult; from-scratch
  encoders keep lr.
- partial: the last `partial_blocks` blocks of every pretrained encoder train (lr × encoder_lr_mult),
  the rest of their backbone is frozen (BatchNorm of frozen blocks in eval mode).
- lora: `peft` LoRA adapters (rank `lora_rank`) on the Linear and 1×1 Conv layers of the pretrained
  backbones, base weights frozen; merged into plain weights when training ends, so the checkpoint
  and the ONNX export carry ordinary weights that load into the plain MultimodalClassifier.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from mmedge.config import TrainConfig
from mmedge.errors import ConfigError, require
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.cache import frozen_part
from mmedge.train.loop import FitPlan
from mmedge.train.modes import (
    freeze,
    frozen_plan,
    log_scratch,
    new_parameters,
    pretrained_modalities,
    register_mode,
    set_trainable,
)

log = logging.getLogger(__name__)
LORA_LR_MULT = 0.25  # adapters train at lr × 0.25 (LoRA's usual 1e-4..1e-3 range for the edge lr 2e-3)


def lp_ft_plans(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """Linear probe for `lp_epochs` (frozen, cached), then a full fine-tune for `epochs`."""
    if cfg.lp_epochs < 1:
        raise ConfigError(f"train.lp_epochs must be ≥ 1 for mode lp-ft, got {cfg.lp_epochs}")
    probe = frozen_plan(model, cfg)[0]
    probe.phase, probe.epochs = "linear-probe", cfg.lp_epochs
    pretrained = pretrained_modalities(model)
    scratch = [p for m in model.modalities if m not in pretrained for p in model.encoder(m).parameters()]
    scratch_ids = {id(p) for p in scratch}
    gentle = [p for p in model.parameters() if id(p) not in scratch_ids]
    groups: list[dict[str, object]] = [{"params": gentle, "lr": cfg.lr * cfg.encoder_lr_mult},
                                       {"params": scratch, "lr": cfg.lr}]
    tune = FitPlan(groups, phase="fine-tune", prepare=lambda: set_trainable(model, True))
    set_trainable(model, True)  # each phase's prepare() sets its own flags when it starts
    return [probe, tune]


def partial_plan(model: MultimodalClassifier, cfg: TrainConfig,
                 modalities: set[str] | None = None) -> list[FitPlan]:
    """Unfreeze the last `partial_blocks` blocks of the pretrained encoders (or of `modalities`)."""
    pretrained = pretrained_modalities(model)
    targets = pretrained if modalities is None else set(modalities)
    if not targets <= pretrained:
        raise ConfigError(f"partial fine-tuning needs pretrained encoders; {sorted(targets - pretrained)} "
                          f"have none (pretrained: {sorted(pretrained)})")
    k = cfg.partial_blocks
    if k < 1:
        raise ConfigError(f"train.partial_blocks must be ≥ 1, got {k} (use mode 'frozen' for 0)")
    unfrozen: list[nn.Module] = []
    for m in sorted(targets):
        blocks = model.encoder(m).blocks()
        if k > len(blocks):
            log.warning("partial: %s has only %d blocks; all of them train", m, len(blocks))
        unfrozen += blocks[-k:]
        log.info("partial: %s trains its last %d of %d blocks", m, min(k, len(blocks)), len(blocks))
    log_scratch(model, pretrained, "partial")

    def prepare() -> None:
        set_trainable(model, True)
        for m in targets:
            freeze(frozen_part(model.encoder(m)))
        for block in unfrozen:
            set_trainable(block, True)

    prepare()
    block_params = [p for b in unfrozen for p in b.parameters()]
    block_ids = {id(p) for p in block_params}
    rest = [p for p in new_parameters(model, targets) if id(p) not in block_ids]
    groups: list[dict[str, object]] = [{"params": rest, "lr": cfg.lr},
                                       {"params": block_params, "lr": cfg.lr * cfg.encoder_lr_mult}]
    return [FitPlan(groups, phase=f"partial-{k}", prepare=prepare)]


def lora_targets(module: nn.Module) -> list[str]:
    """Full names of the Linear and 1×1 (non-grouped) Conv2d layers of `module`."""
    names = []
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear) or (isinstance(sub, nn.Conv2d) and tuple(sub.kernel_size) == (1, 1)
                                          and sub.groups == 1):
            names.append(name)
    return names


def add_lora(module: nn.Module, rank: int) -> Any:
    """Inject LoRA adapters into `module` in place; return the peft LoraModel that can merge them."""
    peft: Any = require("peft", "LoRA fine-tuning", "peft")
    targets = lora_targets(module)
    if not targets:
        raise ConfigError(f"{type(module).__name__} has no Linear or 1×1 Conv layer to put LoRA adapters on")
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none",
                             target_modules=targets)
    return peft.LoraModel(module, config, "default")


def merge_lora(adapters: dict[str, Any]) -> None:
    """Merge every adapter into its base weights and remove the LoRA layers (plain modules again)."""
    for m, lora in adapters.items():
        lora.merge_and_unload()
        log.info("lora: merged the %s adapters into plain weights", m)
    adapters.clear()


def lora_plan(model: MultimodalClassifier, cfg: TrainConfig) -> list[FitPlan]:
    """LoRA adapters on the pretrained backbones; merged into plain weights when the phase ends."""
    if cfg.lora_rank < 1:
        raise ConfigError(f"train.lora_rank must be ≥ 1, got {cfg.lora_rank}")
    pretrained = pretrained_modalities(model)
    if not pretrained:
        raise ConfigError("mode 'lora' needs at least one pretrained encoder (e.g. preset edge)")
    log_scratch(model, pretrained, "lora")
    parts = {m: frozen_part(model.encoder(m)) for m in sorted(pretrained)}
    adapters = {m: add_lora(part, cfg.lora_rank) for m, part in parts.items()}

    def lora_params() -> list[nn.Parameter]:
        return [p for part in parts.values() for n, p in part.named_parameters() if "lora_" in n]

    def prepare() -> None:
        set_trainable(model, True)
        for part in parts.values():
            for name, p in part.named_parameters():
                p.requires_grad_("lora_" in name)

    prepare()
    adapter_params = lora_params()
    ids = {id(p) for p in adapter_params}
    rest = [p for p in new_parameters(model, pretrained) if id(p) not in ids]
    layers = sum(hasattr(sub, "lora_A") for part in parts.values() for sub in part.modules())
    log.info("lora: rank %d on %d layers, %d trainable adapter weights", cfg.lora_rank, layers,
             sum(p.numel() for p in adapter_params))
    groups: list[dict[str, object]] = [{"params": rest, "lr": cfg.lr},
                                       {"params": adapter_params, "lr": cfg.lr * LORA_LR_MULT}]
    return [FitPlan(groups, phase="lora", prepare=prepare, finalize=lambda: merge_lora(adapters))]


register_mode("lp-ft", lp_ft_plans)
register_mode("partial", partial_plan)
register_mode("lora", lora_plan)
