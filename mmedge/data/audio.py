"""Audio decoding, mono, resampling and pad/trim (torch-free; the log-mel is in the model graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmedge.errors import InputError


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file with soundfile → (float32 mono waveform, sample rate)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"not a readable audio file: {path} ({type(exc).__name__})") from exc
    if data.shape[0] == 0:
        raise InputError(f"audio file is empty (0 samples): {path}")
    return data.mean(axis=1).astype(np.float32), int(rate)


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
    """Mono, resample to `rate_out`, zero-pad or trim to exactly clip_seconds → float32 [samples]."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1) if wave.shape[1] <= 8 else wave.mean(axis=0)
    if wave.ndim != 1 or wave.size == 0:
        raise InputError(f"audio must be a non-empty mono or multi-channel waveform, got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise InputError("audio contains NaN or infinite samples")
    if rate_in <= 0:
        raise InputError(f"audio sample rate must be positive, got {rate_in}")
    wave = resample(wave, rate_in, rate_out)
    target = round(rate_out * clip_seconds)
    if len(wave) >= target:
        return np.ascontiguousarray(wave[:target])
    return np.pad(wave, (0, target - len(wave)))
