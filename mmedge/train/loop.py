"""The training loop: AdamW, cross-entropy, modality dropout, validation, early stopping, phases.

Frozen encoders (FitPlan.frozen) are encoded once per split (their frozen part, in eval mode,
through the on-disk EmbeddingStore when given); only their projection and the rest train.
BatchNorm layers whose parameters are all frozen stay in eval mode, so their statistics never move.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mmedge.config import TrainConfig
from mmedge.eval.metrics import evaluate_subsets
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.cache import EmbeddingStore, encoder_features, frozen_part, project_features
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
    best_val_accuracy: float = 0.0
    phases: list[str] = field(default_factory=list)


def batches(n: int, size: int) -> Iterator[torch.Tensor]:
    """Consecutive index ranges covering 0..n."""
    for start in range(0, n, size):
        yield torch.arange(start, min(start + size, n))


def _rows(data: SplitTensors, names: list[str], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: data.inputs[name][idx] for name in names}


@torch.no_grad()
def _encode_features(model: MultimodalClassifier, data: SplitTensors, modality: str,
                     batch_size: int) -> torch.Tensor:
    enc = model.encoder(modality)
    names = [s.name for s in enc.input_specs()]
    was_training = enc.training
    enc.eval()
    try:
        parts = [encoder_features(enc, _rows(data, names, idx)) for idx in batches(len(data), batch_size)]
        return torch.cat(parts)
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
    return {m: project_features(model.encoder(m), f) for m, f in features.items()}


def embed_rows(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor,
               cache: Features) -> list[torch.Tensor]:
    """Embeddings of rows `idx` per modality; modalities in `cache` use their cached features + projection."""
    embeddings = []
    for m in model.modalities:
        enc = model.encoder(m)
        if m in cache:
            embeddings.append(project_features(enc, cache[m][idx]))
        else:
            embeddings.append(enc(*(data.inputs[s.name][idx] for s in enc.input_specs())))
    return embeddings


def forward_rows(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor, present: torch.Tensor,
                 cache: Features) -> torch.Tensor:
    """Logits for rows `idx` under the presence mask `present`."""
    return model.head(*embed_rows(model, data, idx, cache), present)  # type: ignore[no-any-return]


def unimodal_loss(model: MultimodalClassifier, embeddings: list[torch.Tensor], available: torch.Tensor,
                  labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the head with each single available modality present.

    Trains every encoder (and the head) to stand on its own, so the fused model keeps close to
    each modality's standalone accuracy when the others are missing; the encoders run once.
    """
    losses = []
    for j in range(len(model.modalities)):
        rows = available[:, j] > 0
        if bool(rows.any()):
            only = torch.zeros_like(available[rows])
            only[:, j] = 1.0
            logits = model.head(*(e[rows] for e in embeddings), only)
            losses.append(nn.functional.cross_entropy(logits, labels[rows]))
    return torch.stack(losses).mean()


@torch.no_grad()
def predict_logits(model: MultimodalClassifier, data: SplitTensors, present: torch.Tensor,
                   cache: Features | None = None, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of a whole split under a given presence mask."""
    model.eval()
    cache = cache if cache is not None else split_features(model, data, set(model.modalities), batch_size)
    out = [forward_rows(model, data, idx, present[idx], cache) for idx in batches(len(data), batch_size)]
    return torch.cat(out).numpy()


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


def _train_epoch(model: MultimodalClassifier, train: SplitTensors, cfg: TrainConfig, cache: Features,
                 optimizer: torch.optim.Optimizer, gen: torch.Generator) -> float:
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(train), generator=gen)
    total = 0.0
    for start in range(0, len(train), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        available, labels = train.available[idx], train.labels[idx]
        present = modality_dropout(available, cfg.modality_dropout, gen)
        embeddings = embed_rows(model, train, idx, cache)
        loss = loss_fn(model.head(*embeddings, present), labels)
        if cfg.unimodal_loss > 0 and len(model.modalities) > 1:
            loss = loss + cfg.unimodal_loss * unimodal_loss(model, embeddings, available, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / len(train)


def fit(model: MultimodalClassifier, train: SplitTensors, val: SplitTensors, cfg: TrainConfig, plan: FitPlan,
        n_classes: int, progress: ProgressFn | None = None, *, history: History | None = None,
        store: EmbeddingStore | None = None) -> History:
    """Train one phase with early stopping on validation accuracy; the best weights are restored.

    Pass the History of earlier phases to continue it: epochs are appended, and a phase that never
    beats the earlier best keeps the earlier weights.
    """
    if plan.prepare is not None:
        plan.prepare()
    history = history if history is not None else History()
    history.phases.append(plan.phase)
    gen = torch.Generator().manual_seed(cfg.seed + len(history.phases) - 1)
    groups = [g for g in plan.param_groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)  # type: ignore[arg-type]
    epochs = plan.epochs or cfg.epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # calmer late epochs
    train_cache = split_features(model, train, plan.frozen, store=store)
    val_cache = split_features(model, val, plan.frozen, store=store)
    best_state, stale, offset = copy.deepcopy(model.state_dict()), 0, len(history.epochs)
    for epoch in range(1, epochs + 1):
        set_train_mode(model, plan.frozen)
        loss = _train_epoch(model, train, cfg, train_cache, optimizer, gen)
        schedule.step()
        val_acc = _val_accuracy(model, val, val_cache)
        figures = {"epoch": float(offset + epoch), "phase": float(len(history.phases)), "loss": loss,
                   "val_accuracy": val_acc}
        history.epochs.append(figures)
        log.debug("%s epoch %d/%d: loss %.4f, val accuracy %.4f", plan.phase, epoch, epochs, loss, val_acc)
        if progress:
            progress(epoch, epochs, figures)
        if val_acc > history.best_val_accuracy:
            history.best_val_accuracy, history.best_epoch, stale = val_acc, offset + epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("%s: early stop at epoch %d (best %d)", plan.phase, offset + epoch,
                         history.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    if plan.finalize is not None:
        plan.finalize()
    return history


def _val_accuracy(model: MultimodalClassifier, val: SplitTensors, frozen_cache: Features) -> float:
    missing = set(model.modalities) - set(frozen_cache)
    model.eval()
    cache = {**frozen_cache, **split_features(model, val, missing)}
    logits = predict_logits(model, val, val.available, cache)
    return float((logits.argmax(axis=1) == val.labels.numpy()).mean())
