"""Synthesize the spoken-digit asset of the built-in `digits` dataset with espeak-ng.

Regenerate (needs espeak-ng; the dataset loader, the demo and the tests do not):

    apt-get install -y espeak-ng
    .venv/bin/python scripts/make_digits_audio.py            # writes mmedge/data/assets/digits_audio.npz

The output is deterministic for a given espeak-ng version and --seed. Every clip is the word
"zero" ... "nine" spoken by one of VOICES at a seeded speed and pitch, resampled to 8 kHz mono,
trimmed of leading/trailing silence, placed in a 1.0 s window (8000 samples) with a small random
offset, peak-normalized, and stored mu-law encoded (uint8). Arrays in the npz:

    audio        [N, 8000] uint8   mu-law codes (mu = 255; code 128 is ~silence)
    label        [N] int64         the digit
    voice        [N] int64         index into `voices`
    voices       [V] str           espeak-ng voice names (accent[+variant])
    test_voices  [T] str           voices held out for the test split (never in train/val)
    sample_rate  ()  int64         8000
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

log = logging.getLogger("make_digits_audio")

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 8000
CLIP = SAMPLE_RATE  # 1.0 s
MU = 255

TRAIN_VOICES = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029",
    "en+m3", "en+f2", "en-us+f4", "en+klatt", "en-gb-x-rp+m1",
    "en-us+m5", "en-029+f3", "en-gb-scotland+f1", "en+croak", "en-us-nyc+m2",
)  # fmt: skip
TEST_VOICES = ("en-gb-x-gbclan", "en-gb-x-gbcwmd+f5", "en-us-nyc+f1", "en-gb+m7", "en-us+klatt2")
VOICES = TRAIN_VOICES + TEST_VOICES
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "mmedge" / "data" / "assets" / "digits_audio.npz"


def synthesize(word: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    """Run espeak-ng and return (float32 mono waveform, sample rate)."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    proc = subprocess.run(cmd, check=True, capture_output=True)
    wave, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(rate)


def to_8k(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample to SAMPLE_RATE with a polyphase filter."""
    if rate == SAMPLE_RATE:
        return wave.astype(np.float32)
    g = np.gcd(rate, SAMPLE_RATE)
    return resample_poly(wave, SAMPLE_RATE // g, rate // g).astype(np.float32)


def trim_silence(wave: np.ndarray, rel_threshold: float = 0.02, margin: int = 80) -> np.ndarray:
    """Drop leading/trailing samples quieter than rel_threshold x peak (keep `margin` samples)."""
    loud = np.flatnonzero(np.abs(wave) > rel_threshold * float(np.abs(wave).max() + 1e-9))
    if loud.size == 0:
        raise RuntimeError("espeak-ng produced a silent clip")
    start = max(int(loud[0]) - margin, 0)
    stop = min(int(loud[-1]) + margin + 1, wave.size)
    return wave[start:stop]


def place(word: np.ndarray, rng: np.random.Generator, max_jitter: int = 800) -> np.ndarray:
    """Centre the word in a CLIP-long window with a random offset (truncate if too long)."""
    word = word[:CLIP]
    slack = CLIP - word.size
    centre = slack // 2
    jitter = min(max_jitter, centre)
    start = centre + int(rng.integers(-jitter, jitter + 1)) if jitter > 0 else centre
    out = np.zeros(CLIP, dtype=np.float32)
    out[start : start + word.size] = word
    return out


def mulaw_encode(wave: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> mu-law uint8 codes (mu = 255)."""
    x = np.clip(wave, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.round((y + 1.0) / 2.0 * MU).astype(np.uint8)


def make_clip(word: str, voice: str, speed: int, pitch: int, rng: np.random.Generator) -> np.ndarray:
    """One finished clip: synthesize, resample, trim, normalize, place, encode."""
    wave, rate = synthesize(word, voice, speed, pitch)
    wave = trim_silence(to_8k(wave, rate))
    wave = 0.9 * wave / float(np.abs(wave).max())
    return mulaw_encode(place(wave, rng))


def build(variations: int, seed: int) -> dict[str, np.ndarray]:
    """Synthesize every (voice, digit, variation) clip and return the npz arrays."""
    rng = np.random.default_rng(seed)
    audio, labels, voice_idx = [], [], []
    for v, voice in enumerate(VOICES):
        for digit, word in enumerate(WORDS):
            for _ in range(variations):
                speed = int(rng.integers(115, 211))
                pitch = int(rng.integers(20, 81))
                audio.append(make_clip(word, voice, speed, pitch, rng))
                labels.append(digit)
                voice_idx.append(v)
        log.info("voice %-20s done (%d clips so far)", voice, len(audio))
    return {
        "audio": np.stack(audio),
        "label": np.asarray(labels, dtype=np.int64),
        "voice": np.asarray(voice_idx, dtype=np.int64),
        "voices": np.asarray(VOICES),
        "test_voices": np.asarray(TEST_VOICES),
        "sample_rate": np.asarray(SAMPLE_RATE, dtype=np.int64),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--variations", type=int, default=4, help="clips per (voice, digit)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install -y espeak-ng")
    arrays = build(args.variations, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    log.info("wrote %s: %d clips, %.2f MB", args.out, len(arrays["label"]), args.out.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
