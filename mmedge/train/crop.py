"""Longer training audio for random crops: the train split read at crop_factor × the clip, energy-centred.

Evaluation, validation and test inputs stay at the clip length (cut around the clip's loudest window
by mmedge.data.audio.fit_audio). The training split additionally holds a waveform `crop_factor` times
as long, centred on that same window; training batches read it and the augmentation hook
(mmedge.train.augment.random_crop) cuts a random clip-length window from it, so crops differ per epoch.
A frozen audio encoder whose features are cached never sees training batches, so it keeps the
clip-length input (its cached features could not vary anyway).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from mmedge.config import AugmentConfig
from mmedge.data.audio import audio_waveform, fit_audio, read_seconds
from mmedge.data.sample import Dataset
from mmedge.specs import AudioSpec

log = logging.getLogger(__name__)
WAVEFORM = "waveform"


def crop_applies(model: object, cfg: AugmentConfig) -> bool:
    """Whether training audio may be random-cropped: audio augmentation on, crop_factor > 1, a waveform encoder."""
    if "audio" not in getattr(model, "modalities", []) or not cfg.audio.enabled or cfg.audio.crop_factor <= 1:
        return False
    enc = model.encoder("audio")  # type: ignore[attr-defined]
    names = [s.name for s in enc.input_specs()]
    return names[:1] == [WAVEFORM] and int(getattr(enc, "samples", 0)) > 0


def recorded_lengths(waves: np.ndarray) -> np.ndarray:
    """Per row of [N, L]: one past the last non-zero sample (0 for silent rows)."""
    nonzero = waves != 0
    return np.where(nonzero.any(axis=1), waves.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)


def long_waveforms(dataset: Dataset, spec: AudioSpec, factor: float) -> torch.Tensor | None:
    """[N, ⌈factor × samples⌉] training waveforms, energy-centred (zeros where a sample has no audio).

    None when no clip is longer than the model's clip (nothing to crop: the run stays as without crops).
    """
    width = round(spec.sample_rate * spec.clip_seconds * factor)
    out = np.zeros((len(dataset), width), dtype=np.float32)
    for i, s in enumerate(dataset.samples):
        if s.audio is None:
            continue
        wave, rate = audio_waveform(s.audio, s.sample_rate, read_seconds(spec.clip_seconds))
        out[i] = fit_audio(wave, rate, spec.sample_rate, spec.clip_seconds, context=factor)[:width]
    longer = int((recorded_lengths(out) > spec.samples).sum())
    name = dataset.name or "train"
    if not longer:
        log.info("%s audio: no clip is longer than the %g s clip, so there is nothing to random-crop",
                 name, spec.clip_seconds)
        return None
    log.info("%s audio for training: %d of %d clips longer than the %g s clip are read at up to %g × it and "
             "random-cropped to the clip in every batch", name, longer, len(out), spec.clip_seconds, factor)
    return torch.from_numpy(out)


def crop_inputs(crop: dict[str, torch.Tensor], cached: set[str] | frozenset[str],
                phase: str) -> dict[str, torch.Tensor]:
    """The longer training inputs to use in this phase: none when the audio features are cached (frozen)."""
    if crop and "audio" in cached:
        log.info("%s: audio features are cached (frozen encoder): training audio stays at the clip length, "
                 "no random crop", phase)
        return {}
    return crop
