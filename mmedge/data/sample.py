"""Raw samples as read from a dataset, before preprocessing (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmedge.specs import MODALITIES


@dataclass
class Sample:
    """One example; any modality may be None (absent).

    image: uint8 array HxW (grayscale) or HxWx3 (RGB), or a path still to be decoded.
    audio: float32 mono waveform in [-1, 1] at `sample_rate`, or a path still to be decoded.
    """

    label: int | None
    text: str | None = None
    image: np.ndarray | str | None = None
    audio: np.ndarray | str | None = None
    sample_rate: int | None = None
    id: str = ""

    def present(self) -> dict[str, bool]:
        """Which modalities this sample carries."""
        return {m: getattr(self, m) is not None for m in MODALITIES}


@dataclass
class Dataset:
    """A labelled list of samples; `labels[i]` names class i."""

    name: str
    labels: list[str]
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: list[int]) -> Dataset:
        """A dataset with the samples at `indices`."""
        return Dataset(self.name, self.labels, [self.samples[i] for i in indices])
