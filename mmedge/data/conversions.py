"""Conversions of user input (image channels, audio channels / sample rate / clip length), reported once.

Preprocessing calls `note_image` / `note_audio` (or `note`) for every sample; nothing is converted
silently. Inside `collecting()` (the CLI wraps every command in it) the notes are counted and the
caller prints one summary line per kind at the end; outside it, the first occurrence of each kind is
logged as a warning, once per process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_counts: Counter[tuple[str, str]] | None = None  # active collector (one command at a time)
_warned: set[tuple[str, str]] = set()

_CHANNELS = {2: "grayscale", 3: "RGB", 4: "RGBA"}
_UNITS = {"image": "image(s)", "audio": "clip(s)"}


def note(modality: str, what: str) -> None:
    """Record that one `modality` input went through conversion `what` (e.g. 'RGB → grayscale')."""
    key = (modality, what)
    with _lock:
        if _counts is not None:
            _counts[key] += 1
            return
        first = key not in _warned
        _warned.add(key)
    if first:
        logger.warning("converted %s input: %s (reported once)", modality, what)


def note_image(arr: Any, channels: int) -> None:
    """Note a channel conversion of an HxW[xC] image array fed to a model taking `channels` channels."""
    have = 1 if arr.ndim == 2 else int(arr.shape[2])
    if have == 4:
        note("image", "RGBA → " + ("grayscale (alpha dropped)" if channels == 1 else "RGB (alpha dropped)"))
    elif have == 3 and channels == 1:
        note("image", "RGB → grayscale (the model takes 1 channel)")
    elif have == 1 and channels == 3:
        note("image", "grayscale → RGB (the model takes 3 channels)")


def note_audio(wave: Any, channel_axis: int | None, rate_in: int, rate_out: int, clip_seconds: float) -> None:
    """Note down-mixing, resampling and trimming of one waveform (zero-padding a short clip loses nothing)."""
    if channel_axis is not None:
        note("audio", f"{wave.shape[channel_axis]} channels → mono")
    if rate_in != rate_out:
        note("audio", f"resampled {rate_in} Hz → {rate_out} Hz")
    frames = wave.shape[0 if channel_axis in (None, 1) else 1]
    if frames > clip_seconds * rate_in + 0.5:
        note("audio", f"longer than the model's {clip_seconds:g} s clip: cut (around its loudest part)")


@contextmanager
def collecting() -> Iterator[Counter[tuple[str, str]]]:
    """Count notes (instead of logging them) until the block ends; yields the counter."""
    global _counts
    with _lock:
        previous, _counts = _counts, Counter()
        counts = _counts
    try:
        yield counts
    finally:
        with _lock:
            _counts = previous


def summary(counts: Counter[tuple[str, str]]) -> list[str]:
    """One line per conversion kind: 'converted input: 12 image(s) RGB → grayscale (…)'."""
    return [f"converted input: {n} {_UNITS.get(modality, modality)} {what}"
            for (modality, what), n in sorted(counts.items())]
