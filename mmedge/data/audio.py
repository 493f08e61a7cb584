"""Audio decoding, mono, trim, resampling and padding (torch-free; the log-mel is in the model graph).

Files are checked from their header before any sample is read: sample rate in
MIN_SAMPLE_RATE..MAX_SAMPLE_RATE, 1..MAX_CHANNELS channels, at most MAX_AUDIO_SECONDS long (default
10 minutes; env MMEDGE_MAX_AUDIO_SECONDS). Preprocessing reads at most ENERGY_SEARCH_CLIPS clip lengths
and cuts before it resamples, so a long high-rate file costs no more than a few clips.

Arrays are scaled by their dtype's range to [-1, 1]: int8 / 128, int16 / 32768, int32 / 2**31,
uint8 (x - 128) / 128; float arrays are taken as they are but must be finite. Other dtypes are refused.

A clip longer than clip_seconds is cut around its energy, not from its start: within its first
ENERGY_SEARCH_CLIPS clip lengths, the window holding the most energy (the middle one of the windows
within 0.1 % of that) is kept, so a word after a pause is not cut away. AudioFitStats counts what
fit_audio did (clips cut, padded, resampled, sample rates seen) so callers can report it once.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.data.conversions import note, note_audio
from mmedge.data.image import env_limit
from mmedge.errors import InputError

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
MAX_CHANNELS = 32
MAX_AUDIO_SECONDS = 600.0  # env MMEDGE_MAX_AUDIO_SECONDS overrides
AUDIO_TYPES = "a file path (str or pathlib.Path) or a numpy array with its sample_rate"
AUDIO_DTYPES = "float (finite, nominally in [-1, 1]), int8, int16, int32 or uint8 PCM"
ENERGY_SEARCH_CLIPS = 4  # a long clip's loudest window is searched for in its first 4 clip lengths
NEAR_MAX = 1e-3  # windows within 0.1 % of the loudest count as equally loud


@dataclass
class AudioFitStats:
    """What fit_audio did to a set of clips: counts of cut / padded / resampled clips and the rates seen."""

    clips: int = 0
    cut: int = 0
    padded: int = 0
    resampled: int = 0
    rates: Counter[int] = field(default_factory=Counter)

    def add(self, rate: int, rate_out: int, length: int, keep: int) -> None:
        """Count one clip of `length` samples at `rate` fitted to `keep` samples at `rate_out`."""
        self.clips += 1
        self.cut += length > keep
        self.padded += length < keep
        self.resampled += rate != rate_out
        self.rates[rate] += 1

    def summary(self, clip_seconds: float, rate_out: int) -> str:
        """One line: how many clips were cut / padded to clip_seconds and resampled to rate_out."""
        rates = ", ".join(f"{r} Hz × {n}" for r, n in sorted(self.rates.items()))
        return (f"{self.clips} clips (sample rates: {rates or 'none'}): {self.cut} longer than {clip_seconds:g} s "
                f"cut around their energy, {self.padded} zero-padded, {self.resampled} resampled to {rate_out} Hz")


def read_seconds(clip_seconds: float) -> float:
    """How much of a file preprocessing reads for one clip (the energy search window)."""
    return ENERGY_SEARCH_CLIPS * clip_seconds


def loudest_window(wave: np.ndarray, keep: int) -> int:
    """Start of the `keep`-sample window of a mono wave holding the most energy (middle of near-ties)."""
    if len(wave) <= keep:
        return 0
    hop = max(1, keep // 100)  # energy per ~1/100 clip: the search costs O(n) and little memory
    n = len(wave) // hop
    energy = np.square(wave[: n * hop], dtype=np.float32).reshape(n, hop).sum(axis=1, dtype=np.float64)
    width = max(1, keep // hop)
    totals = np.concatenate([[0.0], np.cumsum(energy)])
    sums = totals[width:] - totals[:-width]
    near = np.flatnonzero(sums >= sums.max() * (1.0 - NEAR_MAX))
    return min(int(near[len(near) // 2]) * hop, len(wave) - keep)


def max_audio_seconds() -> float:
    """The duration cap: $MMEDGE_MAX_AUDIO_SECONDS, else the module constant MAX_AUDIO_SECONDS."""
    return env_limit("MMEDGE_MAX_AUDIO_SECONDS", MAX_AUDIO_SECONDS)


def check_rate(rate: Any, what: str = "audio") -> int:
    """The sample rate as an int; InputError unless it is a whole number in the supported range."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InputError(f"{what}: sample rate must be a number of Hz, got {type(rate).__name__}")
    if not math.isfinite(float(rate)) or float(rate) != int(rate):
        raise InputError(f"{what}: sample rate must be a whole number of Hz, got {rate}")
    if not MIN_SAMPLE_RATE <= int(rate) <= MAX_SAMPLE_RATE:
        raise InputError(f"{what}: sample rate {int(rate)} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(rate)


def check_header(rate: Any, channels: int, frames: int, where: str) -> int:
    """The sample rate once the header's rate, channel count and length are within mmedge's limits."""
    rate = check_rate(rate, where)
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{where}: {channels} audio channels, expected 1..{MAX_CHANNELS}")
    seconds, cap = frames / rate, max_audio_seconds()
    if seconds > cap:
        raise InputError(f"audio too long: {where} is {seconds:.1f} s, over the {cap:g} s limit "
                         "(raise it with MMEDGE_MAX_AUDIO_SECONDS, or cut the file)")
    return rate


def load_audio(path: str | os.PathLike[str], clip_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file → (float32 mono waveform, rate): header checked first, at most clip_seconds read."""
    import soundfile as sf

    path = Path(os.fsdecode(path))
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    errors = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)
    try:
        info = sf.info(str(path))
    except errors as exc:
        raise InputError(f"not a readable audio file: {path} ({type(exc).__name__})") from exc
    rate = check_header(info.samplerate, info.channels, info.frames, str(path))
    frames = info.frames if clip_seconds is None else min(info.frames, math.ceil(clip_seconds * rate))
    try:
        data, _ = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except errors as exc:
        raise InputError(f"not a readable audio file: {path} ({type(exc).__name__})") from exc
    if data.shape[0] == 0:
        raise InputError(f"audio file is empty (0 samples): {path}")
    if data.shape[1] > 1:
        note("audio", f"{data.shape[1]} channels → mono")  # reported once per command
    return data.mean(axis=1).astype(np.float32), rate


def audio_waveform(audio: Any, sample_rate: Any, clip_seconds: float | None = None) -> tuple[np.ndarray, Any]:
    """Audio given as a path (str/Path) or an array → (waveform, its rate); a file is read up to clip_seconds."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio, clip_seconds)
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise InputError("audio given as an array needs its sample_rate")
        return audio, sample_rate
    raise InputError(f"audio must be {AUDIO_TYPES}, got {type(audio).__name__}")


def to_float_waveform(wave: np.ndarray) -> np.ndarray:
    """Scale samples by their dtype's range to float32 (see the module docstring); finite, else InputError."""
    kind, itemsize = wave.dtype.kind, wave.dtype.itemsize
    if kind == "f":
        out = wave.astype(np.float32)
    elif kind == "i" and itemsize in (1, 2, 4):
        out = (wave.astype(np.float64) / 2.0 ** (8 * itemsize - 1)).astype(np.float32)
    elif kind == "u" and itemsize == 1:
        out = ((wave.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    else:
        raise InputError(f"audio array: unsupported dtype {wave.dtype}; pass {AUDIO_DTYPES}")
    if not np.all(np.isfinite(out)):
        raise InputError("audio contains NaN or infinite samples (or values beyond float32 range)")
    return out


def channel_axis(wave: np.ndarray) -> int | None:
    """None for 1-D audio; for 2-D, the axis of channels (the shorter side, at most MAX_CHANNELS)."""
    if wave.ndim not in (1, 2) or wave.size == 0:
        raise InputError(f"audio must be a non-empty mono or multi-channel waveform, got shape {wave.shape}")
    if wave.ndim == 1:
        return None
    rows, cols = wave.shape
    if cols <= MAX_CHANNELS and cols <= rows:
        return 1
    if rows <= MAX_CHANNELS:
        return 0
    raise InputError(f"2-D audio needs one side of at most {MAX_CHANNELS} channels, got shape {wave.shape}")


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited FFT resampling (as scipy.signal.resample), float32."""
    if rate_in == rate_out:
        return wave.astype(np.float32, copy=False)
    n_out = max(1, round(len(wave) * rate_out / rate_in))
    spectrum = np.fft.rfft(wave.astype(np.float64))
    keep = min(len(spectrum), n_out // 2 + 1)
    out = np.fft.irfft(spectrum[:keep], n=n_out) * (n_out / len(wave))
    return out.astype(np.float32)


def widen_window(start: int, keep: int, length: int, context: float) -> tuple[int, int]:
    """(start, size) of a window `context` times as long as [start, start + keep), centred on it, inside 0..length."""
    size = math.ceil(keep * context)
    return max(0, min(start - (size - keep) // 2, length - size)), size


def fit_audio(wave: np.ndarray, rate_in: int, rate_out: int, clip_seconds: float,
              stats: AudioFitStats | None = None, context: float = 1.0) -> np.ndarray:
    """Scale, mono, cut to clip_seconds around the energy, resample to `rate_out`, zero-pad → float32 [samples].

    Only the first ENERGY_SEARCH_CLIPS clip lengths are looked at (trimmed before scaling and
    resampling, so a long array costs little); `stats`, when given, counts what was done. `context` > 1
    keeps context × clip_seconds centred on the same loudest window (training data for random crops).
    """
    if not isinstance(wave, np.ndarray):
        raise InputError(f"audio must be {AUDIO_TYPES}, got {type(wave).__name__}")
    rate = check_rate(rate_in)
    axis, keep = channel_axis(wave), math.ceil(clip_seconds * rate)
    note_audio(wave, axis, rate, rate_out, clip_seconds)  # conversions are reported once per command
    search = math.ceil(read_seconds(clip_seconds) * rate)
    wave = wave[:search] if axis in (None, 1) else wave[:, :search]
    wave = to_float_waveform(wave)
    if axis is not None:
        wave = wave.mean(axis=axis, dtype=np.float64).astype(np.float32)
    if stats is not None:
        stats.add(rate, rate_out, len(wave), keep)
    start = loudest_window(wave, keep)
    if context > 1:
        start, keep = widen_window(start, keep, len(wave), context)
    wave = resample(wave[start : start + keep], rate, rate_out)
    if not np.all(np.isfinite(wave)):
        raise InputError("audio samples are too large to resample in float32; scale them to [-1, 1]")
    target = round(rate_out * clip_seconds * context) if context > 1 else round(rate_out * clip_seconds)
    if len(wave) >= target:
        return np.ascontiguousarray(wave[:target])
    return np.pad(wave, (0, target - len(wave)))
