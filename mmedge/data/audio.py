"""Audio decoding, mono, trim, resampling and padding (torch-free; the log-mel is in the model graph).

Files are checked from their header before any sample is read: sample rate in
MIN_SAMPLE_RATE..MAX_SAMPLE_RATE, 1..MAX_CHANNELS channels, at most MAX_AUDIO_SECONDS long (default
10 minutes; env MMEDGE_MAX_AUDIO_SECONDS). Only the frames a clip needs are read, and audio is trimmed
before it is resampled, so a long high-rate file costs no more than one clip.

Arrays are scaled by their dtype's range to [-1, 1]: int8 / 128, int16 / 32768, int32 / 2**31,
uint8 (x - 128) / 128; float arrays are taken as they are but must be finite. Other dtypes are refused.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.data.image import env_limit
from mmedge.errors import InputError

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
MAX_CHANNELS = 32
MAX_AUDIO_SECONDS = 600.0  # env MMEDGE_MAX_AUDIO_SECONDS overrides
AUDIO_TYPES = "a file path (str or pathlib.Path) or a numpy array with its sample_rate"
AUDIO_DTYPES = "float (finite, nominally in [-1, 1]), int8, int16, int32 or uint8 PCM"


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
    rate = check_rate(info.samplerate, str(path))
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise InputError(f"{path}: {info.channels} audio channels, expected 1..{MAX_CHANNELS}")
    seconds, cap = info.frames / rate, max_audio_seconds()
    if seconds > cap:
        raise InputError(f"audio too long: {path} is {seconds:.1f} s, over the {cap:g} s limit "
                         "(raise it with MMEDGE_MAX_AUDIO_SECONDS, or cut the file)")
    frames = info.frames if clip_seconds is None else min(info.frames, math.ceil(clip_seconds * rate))
    try:
        data, _ = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except errors as exc:
        raise InputError(f"not a readable audio file: {path} ({type(exc).__name__})") from exc
    if data.shape[0] == 0:
        raise InputError(f"audio file is empty (0 samples): {path}")
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


def fit_audio(wave: np.ndarray, rate_in: int, rate_out: int, clip_seconds: float) -> np.ndarray:
    """Trim to clip_seconds, scale, mono, resample to `rate_out`, zero-pad → float32 [rate_out * clip_seconds]."""
    if not isinstance(wave, np.ndarray):
        raise InputError(f"audio must be {AUDIO_TYPES}, got {type(wave).__name__}")
    rate = check_rate(rate_in)
    axis, keep = channel_axis(wave), math.ceil(clip_seconds * rate)
    wave = wave[:keep] if axis in (None, 1) else wave[:, :keep]  # trim before scaling and resampling
    wave = to_float_waveform(wave)
    if axis is not None:
        wave = wave.mean(axis=axis, dtype=np.float64).astype(np.float32)
    wave = resample(wave, rate, rate_out)
    if not np.all(np.isfinite(wave)):
        raise InputError("audio samples are too large to resample in float32; scale them to [-1, 1]")
    target = round(rate_out * clip_seconds)
    if len(wave) >= target:
        return np.ascontiguousarray(wave[:target])
    return np.pad(wave, (0, target - len(wave)))
