"""The training loop: AdamW, cross-entropy, modality dropout, validation, early stopping."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mmedge.config import TrainConfig
from mmedge.metrics import evaluate_subsets
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.tensors import SplitTensors, modality_dropout

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, figures)


@dataclass
class FitPlan:
    """What to optimise: parameter groups, and modalities whose encoders stay frozen (cached)."""

    param_groups: list[dict[str, object]]
    frozen: set[str] = field(default_factory=set)
    epochs: int | None = None  # override of cfg.epochs for a phase


@dataclass
class History:
    """Per-epoch figures and the best validation accuracy."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0


@torch.no_grad()
def encode_split(model: MultimodalClassifier, data: SplitTensors, modalities: set[str],
                 batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Embeddings [N, D] of `modalities` for a whole split (encoders in eval mode)."""
    out: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        inputs, _, _ = data.take(idx)
        for m in modalities:
            enc = model.encoder(m)
            was_training = enc.training
            enc.eval()
            out[m].append(enc(*(inputs[s.name] for s in enc.input_specs())))
            enc.train(was_training)
    return {m: torch.cat(v) for m, v in out.items()}


def forward_rows(model: MultimodalClassifier, data: SplitTensors, idx: torch.Tensor, present: torch.Tensor,
                 cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits for rows `idx`, using cached embeddings for frozen modalities."""
    inputs, _, _ = data.take(idx)
    embeddings = []
    for m in model.modalities:
        if m in cache:
            embeddings.append(cache[m][idx])
        else:
            enc = model.encoder(m)
            embeddings.append(enc(*(inputs[s.name] for s in enc.input_specs())))
    return model.head(*embeddings, present)


@torch.no_grad()
def predict_logits(model: MultimodalClassifier, data: SplitTensors, present: torch.Tensor,
                   cache: dict[str, torch.Tensor] | None = None, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of a whole split under a given presence mask."""
    model.eval()
    cache = cache if cache is not None else encode_split(model, data, set(model.modalities), batch_size)
    out = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        out.append(forward_rows(model, data, idx, present[idx], cache))
    return torch.cat(out).numpy()


def evaluate(model: MultimodalClassifier, data: SplitTensors, n_classes: int) -> dict[str, dict[str, float]]:
    """Accuracy/macro-F1 for every modality subset (encoders run once, head once per subset)."""
    cache = encode_split(model, data, set(model.modalities))
    labels = data.labels.numpy()

    def logits_fn(present: np.ndarray) -> np.ndarray:
        return predict_logits(model, data, torch.from_numpy(present), cache)

    return evaluate_subsets(logits_fn, data.available.numpy(), labels, model.modalities, n_classes)


def fit(model: MultimodalClassifier, train: SplitTensors, val: SplitTensors, cfg: TrainConfig, plan: FitPlan,
        n_classes: int, progress: ProgressFn | None = None) -> History:
    """Train with early stopping on validation accuracy; the best weights are restored at the end."""
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(plan.param_groups, weight_decay=cfg.weight_decay)  # type: ignore[arg-type]
    loss_fn = nn.CrossEntropyLoss()
    train_cache = encode_split(model, train, plan.frozen) if plan.frozen else {}
    val_cache = encode_split(model, val, plan.frozen) if plan.frozen else {}
    history, best_state, stale = History(), copy.deepcopy(model.state_dict()), 0
    epochs = plan.epochs or cfg.epochs
    for epoch in range(1, epochs + 1):
        model.train()
        for m in plan.frozen:  # frozen encoders stay in eval mode: BatchNorm statistics must not move
            model.encoder(m).eval()
        order = torch.randperm(len(train), generator=gen)
        total = 0.0
        for start in range(0, len(train), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            present = modality_dropout(train.available[idx], cfg.modality_dropout, gen)
            loss = loss_fn(forward_rows(model, train, idx, present, train_cache), train.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        val_acc = _val_accuracy(model, val, val_cache)
        figures = {"epoch": float(epoch), "loss": total / len(train), "val_accuracy": val_acc}
        history.epochs.append(figures)
        if progress:
            progress(epoch, epochs, figures)
        if val_acc > history.best_val_accuracy:
            history.best_val_accuracy, history.best_epoch, stale = val_acc, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop at epoch %d (best %d)", epoch, history.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    return history


def _val_accuracy(model: MultimodalClassifier, val: SplitTensors, frozen_cache: dict[str, torch.Tensor]) -> float:
    missing = set(model.modalities) - set(frozen_cache)
    model.eval()
    cache = {**frozen_cache, **encode_split(model, val, missing)}
    logits = predict_logits(model, val, val.available, cache)
    return float((logits.argmax(axis=1) == val.labels.numpy()).mean())
