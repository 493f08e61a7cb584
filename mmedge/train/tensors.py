"""A preprocessed split held as torch tensors, plus modality dropout."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Dataset


@dataclass
class SplitTensors:
    """All model inputs of one split: named tensors, availability mask [N, M], labels [N], dataset name.

    `crop` holds longer versions of some inputs (the train split's audio) that training batches use
    and augmentation random-crops back to the input's size (mmedge.train.crop).
    """

    inputs: dict[str, torch.Tensor]
    available: torch.Tensor
    labels: torch.Tensor
    name: str = ""
    crop: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Rows `idx` of inputs, availability and labels."""
        return {k: v[idx] for k, v in self.inputs.items()}, self.available[idx], self.labels[idx]


def tensorize(dataset: Dataset, pre: Preprocessor, chunk: int = 256) -> SplitTensors:
    """Preprocess a dataset (in chunks) into tensors; text padded to the fixed max length."""
    parts: list[dict[str, np.ndarray]] = []
    present, labels = [], []
    for start in range(0, len(dataset), chunk):
        batch = pre.batch(dataset.samples[start : start + chunk], fixed_text_length=True)
        parts.append({k: v for feed in batch.feeds.values() for k, v in feed.items()})
        present.append(batch.present)
        assert batch.labels is not None, "training data must be labelled"
        labels.append(batch.labels)
    pre.log_audio_summary(dataset.name or "dataset")  # trimming/resampling, once per dataset
    inputs = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in parts[0]}
    available = torch.from_numpy(np.concatenate(present))
    return SplitTensors(inputs, available, torch.from_numpy(np.concatenate(labels)), dataset.name)


def modality_dropout(available: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Drop each available modality with probability `rate`, always keeping at least one."""
    if rate <= 0:
        return available
    keep = (torch.rand(available.shape, generator=generator) >= rate).to(available.dtype)
    present = available * keep
    empty = present.sum(dim=1) == 0
    if empty.any():
        # restore one random available modality in rows that lost all of theirs
        rows = available[empty]
        scores = (torch.rand(rows.shape, generator=generator) + 1e-3) * rows
        choice = scores.argmax(dim=1)
        restored = torch.zeros_like(rows)
        restored[torch.arange(len(choice)), choice] = 1.0
        present[empty] = restored
    return present
