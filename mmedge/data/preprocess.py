"""Torch-free preprocessing shared by training and every runtime (no train/serve skew).

The spec of each modality is stored in bundle.json; `Preprocessor.from_spec` rebuilds it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.data.audio import AudioFitStats, audio_waveform, fit_audio, read_seconds
from mmedge.data.image import image_array, normalize_image
from mmedge.data.sample import AudioInput, ImageInput, Sample
from mmedge.data.tokenizer import TextTokenizer
from mmedge.specs import Preprocessing

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Model inputs of a batch: named arrays per modality and the present mask [B, M]."""

    feeds: dict[str, dict[str, np.ndarray]]
    present: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return int(self.present.shape[0])


def select_rows(feed: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The given rows of one modality's feed; text is trimmed to the longest of their real lengths."""
    out = {k: v[rows] for k, v in feed.items()}
    if "attention_mask" in out and out["attention_mask"].size:
        length = max(int(out["attention_mask"].sum(axis=1).max()), 1)
        out = {k: v[:, :length] for k, v in out.items()}
    return out


DECODERS = {"image": ("PIL.Image", "PIL.ImageOps"), "audio": ("soundfile",)}  # imported on first use otherwise


class Preprocessor:
    """Turns raw samples into model inputs, exactly as at training time."""

    def __init__(self, modalities: list[str], spec: Preprocessing | dict[str, Any], root: Path | None = None) -> None:
        self.modalities = list(modalities)
        self.spec = Preprocessing.from_json(spec)
        self.tokenizer: TextTokenizer | None = None
        self.audio_stats = AudioFitStats()  # what audio() did since the last log_audio_summary()
        if "text" in self.modalities:
            text = self.spec.need_text()
            tok_file = Path(text.tokenizer)
            self.tokenizer = TextTokenizer(root / tok_file if root else tok_file, text.max_length)

    def import_decoders(self) -> None:
        """Import the image/audio decoders now (a Pipeline does it while its sessions load on other threads,
        so a cold start's first answer does not pay ~20 ms of imports); a missing one is left to the call."""
        for modality in self.modalities:
            for module in DECODERS.get(modality, ()):
                try:
                    importlib.import_module(module)
                except ImportError:  # reported, with the package to install, by the call that needs it
                    continue

    def text(self, texts: list[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Tokenize a list of strings → input_ids, attention_mask."""
        assert self.tokenizer is not None
        ids, mask = self.tokenizer.encode(texts, pad_to=pad_to)
        return {"input_ids": ids, "attention_mask": mask}

    def image(self, image: ImageInput) -> np.ndarray:
        """Decode (a str/Path/PIL image), scale to uint8, resize and normalize → float32 [C, H, W]."""
        s = self.spec.need_image()
        return normalize_image(image_array(image), s.size, s.channels, s.mean, s.std, s.resize)

    def audio(self, audio: AudioInput, sample_rate: int | None) -> np.ndarray:
        """Decode (a str/Path: at most 4 clip lengths), cut around the energy, mono, resample, pad → float32."""
        s = self.spec.need_audio()
        wave, rate = audio_waveform(audio, sample_rate, read_seconds(s.clip_seconds))
        return fit_audio(wave, rate, s.sample_rate, s.clip_seconds, self.audio_stats)

    def log_audio_summary(self, what: str) -> None:
        """Log once what audio preprocessing did to `what` (cut, padded, resampled, rates seen); reset the counts."""
        if self.audio_stats.clips:
            s = self.spec.need_audio()
            log.info("%s audio: %s", what, self.audio_stats.summary(s.clip_seconds, s.sample_rate))
        self.audio_stats = AudioFitStats()

    def batch(self, samples: list[Sample], fixed_text_length: bool = False) -> Batch:
        """Preprocess samples; absent modalities get zero placeholders and present = 0."""
        n = len(samples)
        present = np.zeros((n, len(self.modalities)), dtype=np.float32)
        feeds: dict[str, dict[str, np.ndarray]] = {}
        for j, m in enumerate(self.modalities):
            have = [i for i, s in enumerate(samples) if s.present()[m]]
            present[have, j] = 1.0
            feeds[m] = self._modality_batch(m, samples, have, fixed_text_length)
        labels = None
        if all(s.label is not None for s in samples):
            labels = np.array([s.label for s in samples], dtype=np.int64)
        return Batch(feeds, present, labels)

    def _modality_batch(self, m: str, samples: list[Sample], have: list[int], fixed: bool) -> dict[str, np.ndarray]:
        n = len(samples)
        if m == "text":
            texts = [samples[i].text if i in set(have) else "" for i in range(n)]
            pad = self.spec.need_text().max_length if fixed else None
            return self.text([t or "" for t in texts], pad_to=pad)
        if m == "image":
            im = self.spec.need_image()
            out = np.zeros((n, im.channels, im.size, im.size), dtype=np.float32)
            for i in have:
                out[i] = self.image(samples[i].image)  # type: ignore[arg-type]
            return {"pixel_values": out}
        wave = np.zeros((n, self.spec.need_audio().samples), dtype=np.float32)
        for i in have:
            wave[i] = self.audio(samples[i].audio, samples[i].sample_rate)  # type: ignore[arg-type]
        return {"waveform": wave}
