"""The built-in spoken digits alone, 'recorded' under other conditions: quiet, zero-padded, band-limited...

Real recordings differ from the built-in clips (loud, noisy, 1 s, 8 kHz): a quiet microphone, a
short word inside long digital-zero padding, a telephone band, another sample rate. A
SpeechCondition reproduces one of these from the clean synthesized clips, keeping the digits
dataset's held-out-voice split (test = voices never heard in train/val). Used by the tiny-collapse
test and benchmarks/audio_generalization.py; `write_speech_manifest` writes WAV files + a JSONL
manifest with a `split` field, so the real `mmedge train` path reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmedge.data.digits import (
    LABELS,
    SAMPLE_RATE,
    SPLITS,
    DigitsDegradation,
    _audio_asset,
    _check_split,
    _clip_pool,
    degrade_audio,
)
from mmedge.data.sample import Dataset, Sample
from mmedge.errors import InputError


@dataclass(frozen=True)
class SpeechCondition:
    """How a spoken-digit clip is 'recorded': level, noise, band, sample rate and zero padding."""

    peak_db: float = -1.0  # peak level in dBFS (-30: a quiet microphone)
    snr_db: tuple[float, float] | None = None  # white noise over the (trimmed) clip, up to the file's Nyquist
    lowpass_hz: float | None = None  # band-limited microphone (brick-wall FFT low-pass)
    sample_rate: int = SAMPLE_RATE  # the file's rate (the asset is 8 kHz; higher rates are upsampled)
    seconds: float = 1.0  # total length: the clip at a random offset, digital zero padding around it
    trim: bool = False  # cut the synthesized clip to its spoken part first (so the padding is long)

    def validate(self) -> None:
        """InputError if a field is out of range."""
        ok = (1000 <= self.sample_rate <= 384_000 and self.seconds > 0 and self.peak_db <= 0
              and (self.lowpass_hz is None or self.lowpass_hz > 0)
              and (self.snr_db is None or self.snr_db[0] <= self.snr_db[1]))
        if not ok:
            raise InputError(f"invalid SpeechCondition (rate 1000..384000 Hz, seconds > 0, peak_db <= 0): {self}")


def speech_span(wave: np.ndarray, rel: float = 0.02) -> tuple[int, int]:
    """(first, last + 1) sample louder than rel x peak: the spoken part of a clip."""
    loud = np.flatnonzero(np.abs(wave) > rel * float(np.abs(wave).max() + 1e-12))
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, len(wave))


def record(wave: np.ndarray, cond: SpeechCondition, rng: np.random.Generator) -> np.ndarray:
    """A clean 8 kHz asset clip 'recorded' under `cond` → float32 at cond.sample_rate.

    Order as in a real chain: (trim) → resample to the file's rate → white noise up to that rate's
    Nyquist (a 16 kHz file's noise reaches 8 kHz) → band limit → level → zero padding.
    """
    from mmedge.data.audio import resample

    out = wave.astype(np.float32)
    if cond.trim:
        lo, hi = speech_span(out)
        out = out[lo:hi]
    out = resample(out, SAMPLE_RATE, cond.sample_rate)
    if cond.snr_db is not None:
        out = degrade_audio(out, rng, DigitsDegradation(snr_db=cond.snr_db))
    if cond.lowpass_hz is not None:
        spectrum = np.fft.rfft(out)
        spectrum[np.fft.rfftfreq(len(out), 1.0 / cond.sample_rate) > cond.lowpass_hz] = 0
        out = np.fft.irfft(spectrum, n=len(out)).astype(np.float32)
    out *= 10.0 ** (cond.peak_db / 20.0) / max(float(np.abs(out).max()), 1e-9)
    total = max(round(cond.seconds * cond.sample_rate), len(out))
    start = int(rng.integers(0, total - len(out) + 1))
    return np.pad(out, (start, total - len(out) - start)).astype(np.float32)


def load_digit_speech(split: str, cond: SpeechCondition | None = None, *, seed: int = 0) -> Dataset:
    """Every spoken-digit clip of `split` (audio only) under `cond`; test = the held-out voices."""
    _check_split(split)
    cond = cond or SpeechCondition()
    cond.validate()
    asset = _audio_asset()
    samples = []
    for digit, pool in enumerate(_clip_pool(split)):
        for clip in pool:
            rng = np.random.default_rng([seed, SPLITS.index(split), int(clip)])
            samples.append(Sample(label=digit, audio=record(asset["wave"][clip], cond, rng),
                                  sample_rate=cond.sample_rate, id=f"speech-{split}-{int(clip):03d}"))
    order = np.random.default_rng([seed, 7]).permutation(len(samples))
    return Dataset(name=f"digit-speech-{split}", labels=list(LABELS), samples=[samples[i] for i in order])


def write_speech_manifest(folder: str | Path, cond: SpeechCondition | None = None, *, seed: int = 0) -> Path:
    """Write every split under `cond` as 16-bit WAV files + manifest.jsonl (with `split`); return the manifest."""
    import soundfile as sf

    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for split in SPLITS:
        for s in load_digit_speech(split, cond, seed=seed).samples:
            name = f"wav/{s.id}.wav"
            sf.write(str(folder / name), np.asarray(s.audio), int(s.sample_rate or SAMPLE_RATE), subtype="PCM_16")
            lines.append(json.dumps({"audio": name, "label": LABELS[int(s.label or 0)], "split": split,
                                     "id": s.id}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
