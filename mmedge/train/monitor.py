"""What keeps the right checkpoint: validation figures, the monitored one, patience and min-delta.

The best epoch is the one with the best monitored value, ties going to the later epoch (on a small
val split accuracy plateaus while the loss still falls; the later epoch is the better model).
Patience counts epochs since the last improvement by more than `min_delta`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmedge.config import MONITORS
from mmedge.errors import ConfigError
from mmedge.eval.metrics import macro_f1


def val_figures(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """val_loss (mean cross-entropy), val_accuracy and val_macro_f1 of a split's logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean()) if len(labels) else math.nan
    pred = logits.argmax(axis=1)
    return {"val_loss": loss, "val_accuracy": float((pred == labels).mean()) if len(labels) else math.nan,
            "val_macro_f1": macro_f1(pred, labels, n_classes)}


@dataclass
class EarlyStopping:
    """The monitored figure's best value and epoch, and epochs since it last improved by more than min_delta."""

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    ref: float | None = None  # the value at the last improvement by more than min_delta
    stale: int = 0
    reason: str | None = None  # set when patience ran out

    def gain(self, value: float, than: float) -> float:
        """How much better `value` is than `than` (positive = better), whatever the direction."""
        return than - value if MONITORS[self.monitor] == "min" else value - than

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True if it is the best so far (ties: the later epoch wins).

        ConfigError for NaN: it compares false with everything, so it would stay "best" for ever.
        """
        if math.isnan(value):
            raise ConfigError(f"train.monitor {self.monitor} is NaN at epoch {epoch}: the val split has no rows "
                              "with that figure, or training diverged (try a lower train.lr)")
        is_best = self.best is None or math.isnan(self.best) or self.gain(value, self.best) >= 0
        if is_best:
            self.best, self.best_epoch = value, epoch
        if self.ref is None or self.gain(value, self.ref) > self.min_delta:
            self.ref, self.stale = value, 0
        else:
            self.stale += 1
            if self.stale >= self.patience:
                self.reason = (f"early stop at epoch {epoch}: {self.monitor} did not improve by more than "
                               f"{self.min_delta:g} for {self.patience} epochs (best {self.best:.4f} at epoch "
                               f"{self.best_epoch})")
        return is_best

    @property
    def stopped(self) -> bool:
        """Whether patience has run out."""
        return self.reason is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the last checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EarlyStopping:
        """Rebuild from to_dict()."""
        return cls(**data)
