"""The benchmark's inputs: real samples of a dataset's split, rotated in fixed batches.

Latency is measured on real data, never zeros: token lengths, image content and audio vary as
they do in use. Only samples that carry every benchmarked modality are kept (so each iteration
runs the same encoders), and the modalities not benchmarked are removed from them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.errors import InputError

if TYPE_CHECKING:
    from mmedge.data.preprocess import Batch
    from mmedge.data.sample import Sample
    from mmedge.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclass
class Workload:
    """Raw sample batches and their preprocessed model inputs, used in rotation."""

    data: str
    split: str
    batch: int
    modalities: list[str]
    samples: list[list[Sample]]
    batches: list[Batch]

    def __len__(self) -> int:
        return len(self.batches)

    def describe(self) -> dict[str, object]:
        """JSON-friendly description for the report's environment record."""
        return {
            "data": self.data,
            "split": self.split,
            "batch": self.batch,
            "modalities": self.modalities,
            "distinct_batches": len(self.batches),
            "samples": sum(len(s) for s in self.samples),
        }


def load_samples(data: str, split: str, modalities: list[str], pool: int, seed: int = 0, *,
                 split_seed: int = 0) -> list[Sample]:
    """Up to `pool` real samples of `data`/`split` that carry every one of `modalities` (others removed).

    `split_seed`: the bundle's (Bundle.split_seed), so a group-split manifest yields the run's own rows.
    """
    from mmedge.data.manifest import resolve_dataset

    if pool < 1:
        raise InputError(f"the sample pool must hold at least 1 sample, got {pool}")
    limit = pool * 4 if data == "digits" else None  # digits: some samples lack text
    dataset = resolve_dataset(data, split_arg(split), seed, limit=limit, split_seed=split_seed)
    dropped: dict[str, Any] = {m: None for m in ("text", "image", "audio") if m not in modalities}
    kept = [
        dataclasses.replace(s, **dropped) for s in dataset.samples if all(getattr(s, m) is not None for m in modalities)
    ]
    if not kept:
        raise InputError(
            f"no sample of {data}:{split} carries all of {', '.join(modalities)}: "
            "benchmark fewer modalities (--modalities) or use other data (--data)"
        )
    logger.info(
        "bench workload: %d of %d samples of %s:%s carry %s",
        min(len(kept), pool),
        len(dataset),
        data,
        split,
        "+".join(modalities),
    )
    return kept[:pool]


def split_arg(split: str) -> str | None:
    """The split to load: 'all' means every row of a manifest (the digits default split otherwise)."""
    return None if split == "all" else split


def sample_batches(samples: list[Sample], batch: int) -> list[list[Sample]]:
    """Consecutive batches of `batch` samples, cycling through the pool when it is smaller than a batch."""
    if batch < 1:
        raise InputError(f"batch size must be >= 1, got {batch}")
    count = max(1, len(samples) // batch)
    order = [samples[i % len(samples)] for i in range(count * batch)]
    return [order[i * batch : (i + 1) * batch] for i in range(count)]


def build_workload(
    pipeline: Pipeline, samples: list[Sample], batch: int, data: str, split: str, modalities: list[str]
) -> Workload:
    """Preprocess every rotated batch once with `pipeline` (inputs are backend-independent)."""
    raw = sample_batches(samples, batch)
    batches = [pipeline.preprocess(b) for b in raw]
    return Workload(data, split, batch, list(modalities), raw, batches)


def median_batch(workload: Workload) -> Batch:
    """The batch with the median total input size (e.g. token length), for the cost model."""
    sizes = [sum(a.size for feeds in b.feeds.values() for a in feeds.values()) for b in workload.batches]
    return workload.batches[int(np.argsort(sizes, kind="stable")[len(sizes) // 2])]
