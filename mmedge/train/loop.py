"""The training loop: AdamW, cross-entropy, modality dropout, validation, early stopping, phases.

The best epoch is chosen by `train.monitor` (val loss by default; ties go to the later epoch) and
its weights are restored at the end; best and last checkpoints are written after every epoch when
the run gives a TrainSession with checkpoints, and `resume` replays the remaining epochs exactly.
Under torchrun the same loop runs on every rank (mmedge.train.distributed).

Frozen encoders (FitPlan.frozen) are encoded once per split (their frozen part, in eval mode,
through the on-disk EmbeddingStore when given); only their projection and the rest train.
BatchNorm layers whose parameters are all frozen stay in eval mode, so their statistics never move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmedge.config import TrainConfig
from mmedge.errors import ConfigError
from mmedge.eval.metrics import evaluate_subsets
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.augment import attach_augmentation
from mmedge.train.cache import EmbeddingStore, encoder_features, frozen_part, project_features
from mmedge.train.crop import crop_inputs
from mmedge.train.device import module_device
from mmedge.train.distributed import DistContext
from mmedge.train.monitor import EarlyStopping, val_figures
from mmedge.train.state import TrainSession, restore_rng, state_copy
from mmedge.train.step import TrainStep, embed_inputs
from mmedge.train.tensors import SplitTensors, modality_dropout

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, figures)
Features = dict[str, torch.Tensor]  # modality → frozen-part features [N, F] of a whole split


@dataclass
class FitPlan:
    """One training phase: parameter groups, frozen (cached) modalities, and hooks around it.

    `prepare` runs before the optimizer is built (it sets requires_grad for this phase);
    `finalize` runs after the best weights are restored (e.g. merging LoRA adapters).
    """

    param_groups: list[dict[str, object]]
    frozen: set[str] = field(default_factory=set)
    epochs: int | None = None  # override of cfg.epochs for a phase
    phase: str = "train"
    prepare: Callable[[], None] | None = None
    finalize: Callable[[], None] | None = None


@dataclass
class History:
    """Per-epoch figures over every phase (`phase` = 1-based index into `phases`) and the best one."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0  # val accuracy of the best epoch
    phases: list[str] = field(default_factory=list)
    monitor: str = "val_loss"
    best_value: float | None = None  # the monitored figure at the best epoch
    stop_reasons: list[str] = field(default_factory=list)  # per phase: why it ended


def batches(n: int, size: int) -> Iterator[torch.Tensor]:
    """Consecutive index ranges covering 0..n."""
    for start in range(0, n, size):
        yield torch.arange(start, min(start + size, n))


def _rows(data: SplitTensors, names: list[str], idx: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    return {name: data.inputs[name][idx].to(device) for name in names}  # splits stay on the CPU


@torch.no_grad()
def _encode_features(model: MultimodalClassifier, data: SplitTensors, modality: str,
                     batch_size: int) -> torch.Tensor:
    enc = model.encoder(modality)
    names = [s.name for s in enc.input_specs()]
    was_training = enc.training
    enc.eval()
    try:
        device = module_device(enc)
        parts = [encoder_features(enc, _rows(data, names, idx, device)) for idx in batches(len(data), batch_size)]
        return torch.cat(parts).cpu()  # cached features live with the split (and the on-disk cache) on the CPU
    finally:
        enc.train(was_training)


def split_features(model: MultimodalClassifier, data: SplitTensors, modalities: set[str],
                   batch_size: int = 256, store: EmbeddingStore | None = None) -> Features:
    """Frozen-part features [N, F] of `modalities` for a whole split (eval mode; cached by `store`)."""
    out: Features = {}
    for m in sorted(modalities):
        def compute(m: str = m) -> torch.Tensor:
            return _encode_features(model, data, m, batch_size)

        out[m] = store.features(model, m, data, compute) if store is not None else compute()
    return out


@torch.no_grad()
def encode_split(model: MultimodalClassifier, data: SplitTensors, modalities: set[str],
                 batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Embeddings [N, D] of `modalities` for a whole split (encoders in eval mode)."""
    features = split_features(model, data, modalities, batch_size)
    device = module_device(model)
    return {m: project_features(model.encoder(m), f.to(device)).cpu() for m, f in features.items()}


def embed_rows(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor,
               cache: Features) -> list[torch.Tensor]:
    """Embeddings of rows `idx` per modality; modalities in `cache` use their cached features + projection."""
    device = module_device(model)
    return embed_inputs(model, batch_inputs(model, data, idx, set(cache)),
                        {m: f[idx].to(device) for m, f in cache.items()})


def batch_inputs(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor,
                 skip: set[str]) -> dict[str, torch.Tensor]:
    """Rows `idx` of the inputs of every encoder whose modality is not in `skip` (cached features)."""
    names = [s.name for m in model.modalities if m not in skip for s in model.encoder(m).input_specs()]
    return _rows(data, names, idx, module_device(model))


def forward_rows(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor, present: torch.Tensor,
                 cache: Features) -> torch.Tensor:
    """Logits for rows `idx` under the presence mask `present`."""
    return model.head(*embed_rows(model, data, idx, cache), present.to(module_device(model)))  # type: ignore[no-any-return]


@torch.no_grad()
def predict_logits(model: MultimodalClassifier, data: SplitTensors, present: torch.Tensor,
                   cache: Features | None = None, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of a whole split under a given presence mask."""
    model.eval()
    cache = cache if cache is not None else split_features(model, data, set(model.modalities), batch_size)
    out = [forward_rows(model, data, idx, present[idx], cache) for idx in batches(len(data), batch_size)]
    return torch.cat(out).cpu().numpy()


def evaluate(model: MultimodalClassifier, data: SplitTensors, n_classes: int, *,
             store: EmbeddingStore | None = None,
             cached: set[str] | frozenset[str] = frozenset()) -> dict[str, dict[str, float]]:
    """Accuracy/macro-F1 for every modality subset (encoders run once, head once per subset).

    Modalities in `cached` (frozen encoders) read their features through `store`.
    """
    model.eval()
    cache = split_features(model, data, set(cached), store=store)
    cache.update(split_features(model, data, set(model.modalities) - set(cached)))
    labels = data.labels.numpy()

    def logits_fn(present: np.ndarray) -> np.ndarray:
        return predict_logits(model, data, torch.from_numpy(present), cache)

    return evaluate_subsets(logits_fn, data.available.numpy(), labels, model.modalities, n_classes)


def set_train_mode(model: MultimodalClassifier, frozen: set[str]) -> None:
    """Train mode, except frozen encoder parts and BatchNorm layers that must keep their statistics.

    BatchNorm stays in eval mode (running statistics used, never updated) when all its parameters are
    frozen, and always inside pretrained backbones: with batch statistics in training and slowly moving
    running statistics at eval, a few fine-tuning epochs left EfficientNet's eval-mode features far
    from the training ones (edge, text+image, 3 full-FT epochs: test accuracy 0.26 vs 0.54).
    """
    model.train()
    for m in frozen:
        frozen_part(model.encoder(m)).eval()
    pretrained = [frozen_part(model.encoder(m)) for m in model.modalities
                  if getattr(model.encoder(m), "pretrained", False)]
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()):
            module.eval()
    for backbone in pretrained:
        for module in backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _train_epoch(step: nn.Module, model: MultimodalClassifier, train: SplitTensors, cfg: TrainConfig,
                 cache: Features, optimizer: torch.optim.Optimizer, gen: torch.Generator, dist: DistContext,
                 shard_seed: int, epoch: int, crop: dict[str, torch.Tensor]) -> float:
    """One pass over the training rows (this rank's share under torchrun); the mean loss over all ranks."""
    if dist.active:
        order, size = dist.shard(len(train), shard_seed, epoch), dist.local_batch(cfg.batch_size)
    else:
        order, size = torch.randperm(len(train), generator=gen), cfg.batch_size
    total, device = 0.0, module_device(model)
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        available, labels = train.available[idx], train.labels[idx]
        present = modality_dropout(available, cfg.modality_dropout, gen)  # drawn on the CPU: same on any device
        inputs = batch_inputs(model, train, idx, set(cache))
        inputs.update({k: v[idx].to(device) for k, v in crop.items() if k in inputs})  # cropped by augmentation
        loss = step(inputs, {m: f[idx].to(device) for m, f in cache.items()}, present.to(device),
                    available.to(device), labels.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return dist.mean(total / max(len(order), 1), float(len(order)))


def _val_figures(model: MultimodalClassifier, val: SplitTensors, frozen_cache: Features,
                 n_classes: int) -> dict[str, float]:
    """val_loss, val_accuracy, val_macro_f1 with every available modality present (eval mode)."""
    missing = set(model.modalities) - set(frozen_cache)
    model.eval()
    cache = {**frozen_cache, **split_features(model, val, missing)}
    logits = predict_logits(model, val, val.available, cache)
    return val_figures(logits, val.labels.numpy(), n_classes)


def _start_history(history: History | None, cfg: TrainConfig, plan: FitPlan, session: TrainSession) -> History:
    """The history to continue: the resumed one, the given one (monitor checked), or a new one."""
    history = history if history is not None else History(monitor=cfg.monitor)
    if session.resume is not None:
        for key, value in session.resume["history"].items():
            setattr(history, key, value)
        return history
    if history.best_value is None:
        history.monitor = cfg.monitor
    elif history.monitor != cfg.monitor:
        raise ConfigError(f"phase {plan.phase} monitors {cfg.monitor}, earlier phases {history.monitor}")
    history.phases.append(plan.phase)
    return history


def _resume(resume: dict[str, Any], model: MultimodalClassifier, optimizer: torch.optim.Optimizer,
            schedule: Any, dist: DistContext) -> tuple[int, int, dict[str, torch.Tensor], EarlyStopping]:
    """Load last.pt's state; return (next epoch, epoch offset, best weights, early-stopping state)."""
    model.load_state_dict(resume["model"])
    optimizer.load_state_dict(resume["optimizer"])
    schedule.load_state_dict(resume["scheduler"])
    best = resume.get("best")
    best_state = best[0] if best is not None else state_copy(model)
    log.info("resuming phase %d after epoch %d", resume["phase"], resume["epoch"])
    return resume["epoch"] + 1, resume["offset"], best_state, EarlyStopping.from_dict(resume["stopper"])


def augment_seed(seed: int, phase: int, epoch: int, rank: int) -> int:
    """Augmentation seed of one epoch: reseeded every epoch, so a resumed run replays the same stream."""
    return seed + 7919 * phase + 104729 * epoch + 1299709 * rank


def fit(model: MultimodalClassifier, train: SplitTensors, val: SplitTensors, cfg: TrainConfig, plan: FitPlan,
        n_classes: int, progress: ProgressFn | None = None, *, history: History | None = None,
        store: EmbeddingStore | None = None, session: TrainSession | None = None) -> History:
    """Train one phase with early stopping on `cfg.monitor`; the best weights are restored.

    Pass the History of earlier phases to continue it: epochs are appended, and a phase that never
    beats the earlier best keeps the earlier weights. `session` adds checkpoints, resume and DDP.
    """
    session = session or TrainSession()
    dist = session.dist
    if plan.prepare is not None:
        plan.prepare()
    history = _start_history(history, cfg, plan, session)
    phase = len(history.phases)
    gen = torch.Generator().manual_seed(cfg.seed + phase - 1 + 1000 * dist.rank)  # rank 0: as a single process
    groups = [g for g in plan.param_groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)  # type: ignore[arg-type]
    epochs = plan.epochs or cfg.epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # calmer late epochs
    train_cache = split_features(model, train, plan.frozen, store=store)
    val_cache = split_features(model, val, plan.frozen, store=store)
    stopper = EarlyStopping(cfg.monitor, cfg.patience, cfg.min_delta, history.best_value, history.best_epoch,
                            history.best_value)
    best_state, start, offset = state_copy(model), 1, len(history.epochs)
    if session.resume is not None:
        start, offset, best_state, stopper = _resume(session.resume, model, optimizer, schedule, dist)
        restore_rng(gen, session.resume["rng"][dist.rank])
    step = dist.wrap(TrainStep(model, cfg.unimodal_loss))
    crop = crop_inputs(train.crop, plan.frozen, plan.phase)
    for epoch in range(start, epochs + 1):
        if stopper.stopped:
            break
        attach_augmentation(model, cfg.augment, augment_seed(cfg.seed, phase, epoch, dist.rank))  # training only
        set_train_mode(model, plan.frozen)
        loss = _train_epoch(step, model, train, cfg, train_cache, optimizer, gen, dist, cfg.seed + phase - 1, epoch,
                            crop)
        schedule.step()
        dist.sync_buffers(model)
        figures = {"epoch": float(offset + epoch), "phase": float(phase), "loss": loss,
                   **dist.broadcast(_val_figures(model, val, val_cache, n_classes))}
        history.epochs.append(figures)
        if stopper.update(figures[cfg.monitor], offset + epoch):
            best_state = state_copy(model)
            history.best_epoch, history.best_value = offset + epoch, figures[cfg.monitor]
            history.best_val_accuracy = figures["val_accuracy"]
            session.save_best(best_state, offset + epoch)
        session.save_last({"phase": phase, "epoch": epoch, "offset": offset, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                           "stopper": stopper.to_dict(), "history": asdict(history)}, gen)
        log.debug("%s epoch %d/%d: loss %.4f, %s %.4f", plan.phase, epoch, epochs, loss, cfg.monitor,
                  figures[cfg.monitor])
        if progress:
            progress(epoch, epochs, figures)
    history.stop_reasons.append(f"{plan.phase}: {stopper.reason or f'ran all {epochs} epochs'}")
    log.info("%s", history.stop_reasons[-1])
    model.load_state_dict(best_state)
    model.eval()
    if plan.finalize is not None:
        plan.finalize()
    return history
