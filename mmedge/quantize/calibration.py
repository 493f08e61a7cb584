"""Real calibration and parity inputs per component, and re-iterable ONNX Runtime data readers.

Encoders are fed real preprocessed inputs (token ids + masks, images, waveforms) of the samples that
carry their modality; the fusion head is fed the REAL outputs of the fp32 encoders on the same
samples, with the samples' real presence mask, exactly as the runtime Pipeline feeds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from mmedge.bundle import Bundle
from mmedge.data.manifest import resolve_dataset
from mmedge.data.preprocess import select_rows
from mmedge.data.sample import Dataset
from mmedge.errors import InputError
from mmedge.progress import track
from mmedge.specs import HEAD, embedding_name

log = logging.getLogger(__name__)

Feed = dict[str, np.ndarray]
DEFAULT_DATA = "digits"


class FeedReader(CalibrationDataReader):  # type: ignore[misc]
    """A CalibrationDataReader over a fixed list of feeds; `rewind` makes it re-iterable."""

    def __init__(self, feeds: list[Feed]) -> None:
        self.feeds = list(feeds)
        self._pos = 0

    def get_next(self) -> Feed | None:
        """The next feed, or None at the end."""
        if self._pos >= len(self.feeds):
            return None
        self._pos += 1
        return self.feeds[self._pos - 1]

    def rewind(self) -> None:
        """Start again from the first feed."""
        self._pos = 0

    def __len__(self) -> int:
        return len(self.feeds)


@dataclass
class ComponentFeeds:
    """Real inputs per component (lists of batches) and how many samples each saw."""

    feeds: dict[str, list[Feed]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def reader(self, component: str) -> FeedReader:
        """A fresh, re-iterable reader over `component`'s feeds."""
        return FeedReader(self.feeds[component])


def data_spec(bundle: Bundle, data: str | None) -> str:
    """The dataset to use: explicit, else the one recorded at export, else the built-in digits."""
    return data or str(bundle.provenance.get("data") or DEFAULT_DATA)


def load_samples(bundle: Bundle, data: str | None, split: str, n: int, seed: int = 0) -> Dataset:
    """Up to `n` labelled or unlabelled samples of `split` (InputError when there are none)."""
    if n < 1:
        raise InputError(f"need at least 1 calibration sample, got {n}")
    spec = data_spec(bundle, data)
    dataset = resolve_dataset(spec, split, seed, split_seed=bundle.split_seed)
    if not dataset.samples:
        raise InputError(f"no calibration data: dataset '{spec}' has no samples in split '{split}'")
    return dataset.subset(list(range(min(n, len(dataset)))))


def component_feeds(bundle: Bundle, dataset: Dataset, components: list[str], batch: int = 8,
                    threads: int | None = None) -> ComponentFeeds:
    """Real feeds for each of `components`; the head's come from the fp32 encoders (ONNX Runtime)."""
    from mmedge.runtime.pipeline import Pipeline

    result = ComponentFeeds(feeds={c: [] for c in components}, samples=dict.fromkeys(components, 0),
                            source=dataset.name)
    with Pipeline.from_bundle(bundle, precision="fp32", threads=threads) as pipe:  # this Bundle: its hash checks
        for start in track(range(0, len(dataset), batch), "calibration samples"):  # a bar with ETA in the CLI
            chunk = [s for s in dataset.samples[start : start + batch] if any(s.present().values())]
            if not chunk:
                continue
            prepared = pipe.preprocess(chunk)
            for j, m in enumerate(pipe.modalities):
                rows = np.flatnonzero(prepared.present[:, j] > 0)
                if m in result.feeds and rows.size:
                    result.feeds[m].append(select_rows(prepared.feeds[m], rows))
                    result.samples[m] += int(rows.size)
            if HEAD in result.feeds:
                emb = pipe.encode(prepared, concurrent=False)
                feed = {embedding_name(m): emb[m] for m in pipe.modalities}
                feed["present"] = prepared.present.astype(np.float32)
                result.feeds[HEAD].append(feed)
                result.samples[HEAD] += len(chunk)
    empty = [c for c in components if not result.feeds[c]]
    if empty:
        raise InputError(f"no calibration data for {', '.join(empty)}: none of the {len(dataset)} samples of "
                         f"'{dataset.name}' carries that modality; give --calib data that has it")
    log.info("calibration feeds from %s: %s", dataset.name, result.samples)
    return result
