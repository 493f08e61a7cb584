"""The built-in offline `digits` dataset: degraded digit scans + noisy spoken digits + partial text hints.

image: the 1,797 real 8x8 handwritten scans shipped with scikit-learn, upsampled, shifted, occluded
       and noised; audio: espeak-ng spoken digits (assets/digits_audio.npz, see
       scripts/make_digits_audio.py) at low SNR, the test split using voices never heard in train/val;
text:  short true but partial hints ("an even number greater than four"), absent at a set rate.
Each modality alone is imperfect so that fusing them is needed. Everything is seeded.
The spoken digits alone under other recording conditions: mmedge.data.speech_conditions.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmedge.data.sample import Dataset, Sample
from mmedge.errors import InputError, MmedgeError, require

log = logging.getLogger(__name__)

LABELS: list[str] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
SAMPLE_RATE = 8000
ASSET = Path(__file__).parent / "assets" / "digits_audio.npz"
_SPLIT_SEED = 20240  # fixed: the scans in each split never change with `seed`
_SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
_MU = 255


@dataclass(frozen=True)
class DigitsDegradation:
    """How much each modality is degraded (defaults: every modality alone is clearly imperfect)."""

    image_size: int = 32  # the 8x8 scans are upsampled (bilinear) to image_size x image_size
    image_shift: int = 3  # max random translation in pixels (at image_size)
    occlude_prob: float = 0.8  # chance of one occluding block
    occlude_frac: tuple[float, float] = (0.3, 0.5)  # block side as a fraction of image_size
    image_noise: float = 40.0  # std of additive Gaussian noise, in 0..255 units
    snr_db: tuple[float, float] = (-6.0, 3.0)  # speech-to-white-noise ratio over the spoken part
    text_pair_rate: float = 0.5  # chance a hint combines two facts instead of one

    def validate(self) -> None:
        """Raise InputError if a knob is out of range."""
        checks = [
            (self.image_size >= 8, "image_size must be >= 8"),
            (0 <= self.image_shift < self.image_size // 2, "image_shift must be in [0, image_size/2)"),
            (0.0 <= self.occlude_prob <= 1.0, "occlude_prob must be in [0, 1]"),
            (0.0 <= self.occlude_frac[0] <= self.occlude_frac[1] <= 1.0, "occlude_frac must be 0<=lo<=hi<=1"),
            (self.image_noise >= 0.0, "image_noise must be >= 0"),
            (self.snr_db[0] <= self.snr_db[1], "snr_db must be (low, high) with low <= high"),
            (0.0 <= self.text_pair_rate <= 1.0, "text_pair_rate must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"invalid DigitsDegradation: {message} (got {self})")


# ---------------------------------------------------------------- text hints


@dataclass(frozen=True)
class _Fact:
    digits: frozenset[int]
    predicates: tuple[str, ...]  # complete after "it is": "an even number", "greater than four"
    noun: str | None = None  # "even number": can take a qualifier ("an even number greater than four")
    qualifiers: tuple[str, ...] = ()  # can follow a noun: "greater than four", "divisible by three"


_FACTS: tuple[_Fact, ...] = (
    _Fact(frozenset({0, 2, 4, 6, 8}), ("an even number", "even"), "even number"),
    _Fact(frozenset({1, 3, 5, 7, 9}), ("an odd number", "odd", "not divisible by two"), "odd number"),
    _Fact(frozenset({2, 3, 5, 7}), ("a prime", "a prime number", "prime"), "prime"),
    _Fact(frozenset({0, 1, 4, 6, 8, 9}), ("not a prime", "not prime")),
    _Fact(frozenset({5, 6, 7, 8, 9}), ("greater than four", "more than four", "at least five"),
          qualifiers=("greater than four", "above four")),
    _Fact(frozenset({0, 1, 2, 3, 4}), ("less than five", "smaller than five", "at most four"),
          qualifiers=("less than five", "below five")),
    _Fact(frozenset({0, 3, 6, 9}), ("divisible by three", "a multiple of three"), "multiple of three",
          ("divisible by three",)),
    _Fact(frozenset({0, 1, 4, 9}), ("a perfect square", "a square number"), "perfect square"),
    _Fact(frozenset({1, 2, 4, 8}), ("a power of two",), "power of two"),
)  # fmt: skip

_ONE = ("{}", "it is {}", "the digit is {}", "a digit that is {}", "hint: {}", "the number is {}")
_TWO = ("{} and {}", "it is {} and {}", "the digit is {} and {}", "{}, {}", "hint: {} and {}")


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _render_pair(first: _Fact, second: _Fact, rng: np.random.Generator) -> str:
    """Two facts in one hint: noun + qualifier when the grammar allows, else 'A and B'."""
    for a, b in ((first, second), (second, first)):
        if a.noun and b.qualifiers and rng.random() < 0.7:
            return _pick(rng, ("{}", "it is {}", "the digit is {}")).format(
                f"{_article(a.noun)} {_pick(rng, b.qualifiers)}"
            )
    return _pick(rng, _TWO).format(_pick(rng, first.predicates), _pick(rng, second.predicates))


def make_hint(label: int, rng: np.random.Generator, pair_rate: float = 0.5) -> str:
    """A short hint that is TRUE for `label` but usually does not pin it down."""
    if not 0 <= label < len(LABELS):
        raise InputError(f"digit label must be in 0..9, got {label}")
    true_facts = [f for f in _FACTS if label in f.digits]
    order = rng.permutation(len(true_facts))
    if rng.random() < pair_rate and len(true_facts) >= 2:
        return _render_pair(true_facts[order[0]], true_facts[order[1]], rng)
    return _pick(rng, _ONE).format(_pick(rng, true_facts[order[0]].predicates))


# ---------------------------------------------------------------- assets


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """mu-law uint8 codes (mu = 255) -> float32 waveform in [-1, 1]."""
    y = codes.astype(np.float32) / _MU * 2.0 - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(_MU)) / _MU).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _audio_asset() -> dict[str, np.ndarray]:
    """The decoded spoken-digit clips (cached)."""
    if not ASSET.is_file():
        raise MmedgeError(
            f"the digits audio asset is missing: {ASSET}; reinstall mmedge or regenerate it with "
            "`python scripts/make_digits_audio.py` (needs espeak-ng)"
        )
    with np.load(ASSET) as npz:
        data = {k: npz[k] for k in ("audio", "label", "voice", "voices", "test_voices", "sample_rate")}
    if int(data["sample_rate"]) != SAMPLE_RATE:
        raise MmedgeError(f"{ASSET}: sample_rate {int(data['sample_rate'])}, expected {SAMPLE_RATE}")
    data["wave"] = mulaw_decode(data.pop("audio"))
    for array in data.values():
        array.flags.writeable = False  # shared by every caller through the cache
    log.debug("loaded %d spoken-digit clips from %s", len(data["label"]), ASSET)
    return data


@functools.lru_cache(maxsize=4)
def _scans(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digit scans as uint8 [N, S, S] (0..255) and their labels (cached)."""
    datasets = require("sklearn.datasets", "the built-in digits dataset", "scikit-learn")
    bunch = datasets.load_digits()  # type: ignore[attr-defined]
    images = np.clip(np.asarray(bunch.images) * (255.0 / 16.0), 0, 255).astype(np.uint8)
    if image_size != images.shape[1]:
        from PIL import Image

        resample = Image.Resampling.BILINEAR
        images = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), resample))
                           for im in images])  # fmt: skip
    targets = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = targets.flags.writeable = False  # shared through the cache
    return images, targets


def _split_scans(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the scans in `split`: a fixed, stratified ~70/15/15 partition, in shuffled order."""
    rng = np.random.default_rng(_SPLIT_SEED)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for digit in range(len(LABELS)):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_train = round(len(idx) * _SPLIT_FRACTIONS[0])
        n_val = round(len(idx) * _SPLIT_FRACTIONS[1])
        parts["train"] += idx[:n_train].tolist()
        parts["val"] += idx[n_train : n_train + n_val].tolist()
        parts["test"] += idx[n_train + n_val :].tolist()
    return rng.permutation(np.asarray(parts[split], dtype=np.int64))


def voice_names(split: str) -> list[str]:
    """The espeak-ng voices whose clips a split draws from (test voices are held out)."""
    _check_split(split)
    asset = _audio_asset()
    test = {str(v) for v in asset["test_voices"]}
    names = [str(v) for v in asset["voices"]]
    return [v for v in names if (v in test) == (split == "test")]


def _clip_pool(split: str) -> list[np.ndarray]:
    """Per digit, indices of the clips `split` may use.

    Train and val share voices but not clips (the last clip of each voice x digit goes to val);
    test uses only the held-out voices.
    """
    asset = _audio_asset()
    voices = [str(v) for v in asset["voices"]]
    allowed = {voices.index(v) for v in voice_names(split)}
    if split != "test" and allowed & {voices.index(str(v)) for v in asset["test_voices"]}:
        raise MmedgeError("digits asset: a test voice leaked into train/val")  # pragma: no cover
    pool: list[np.ndarray] = []
    for digit in range(len(LABELS)):
        chosen: list[int] = []
        for v in sorted(allowed):
            group = np.flatnonzero((asset["label"] == digit) & (asset["voice"] == v)).tolist()
            if split == "test":
                chosen += group
            elif len(group) < 2:
                chosen += group if split == "train" else []
            else:
                chosen += group[-1:] if split == "val" else group[:-1]
        if not chosen:
            raise MmedgeError(f"digits asset has no '{LABELS[digit]}' clip for split {split}")
        pool.append(np.asarray(chosen, dtype=np.int64))
    return pool


# ---------------------------------------------------------------- degradations


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels, filling the uncovered border with 0 (background)."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def degrade_image(image: np.ndarray, rng: np.random.Generator, deg: DigitsDegradation) -> np.ndarray:
    """Shift, occlude a block, add noise; uint8 in, uint8 out."""
    out = image.astype(np.float32)
    size = out.shape[0]
    if deg.image_shift:
        dy, dx = (int(d) for d in rng.integers(-deg.image_shift, deg.image_shift + 1, size=2))
        out = _shift(out, dy, dx)
    if rng.random() < deg.occlude_prob:
        side = max(1, round(size * rng.uniform(*deg.occlude_frac)))
        y, x = rng.integers(0, size - side + 1, size=2)
        out[y : y + side, x : x + side] = rng.uniform(0, 255)
    if deg.image_noise:
        out += rng.normal(0.0, deg.image_noise, size=out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def degrade_audio(wave: np.ndarray, rng: np.random.Generator, deg: DigitsDegradation) -> np.ndarray:
    """Add white noise at a random SNR (measured over the spoken part); peak-normalize to 0.9."""
    active = wave[np.abs(wave) > 0.02 * float(np.abs(wave).max() + 1e-9)]
    power = float(np.mean(active**2)) if active.size else float(np.mean(wave**2)) + 1e-12
    snr_db = rng.uniform(*deg.snr_db)
    noise = rng.normal(0.0, np.sqrt(power / 10.0 ** (snr_db / 10.0)), size=wave.shape)
    mixed = wave + noise.astype(np.float32)
    return (0.9 * mixed / max(float(np.abs(mixed).max()), 1e-6)).astype(np.float32)


# ---------------------------------------------------------------- the dataset


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown digits split '{split}': expected one of {', '.join(SPLITS)}")


def _sample(
    i: int, scan: np.ndarray, digit: int, pool: np.ndarray, rng: np.random.Generator,
    split: str, text_absent_rate: float, deg: DigitsDegradation,
) -> Sample:  # fmt: skip
    """One degraded multimodal sample."""
    image = degrade_image(scan, rng, deg)
    clip = int(pool[int(rng.integers(len(pool)))])
    audio = degrade_audio(_audio_asset()["wave"][clip], rng, deg)
    hint = make_hint(digit, rng, deg.text_pair_rate)
    text = None if rng.random() < text_absent_rate else hint
    return Sample(label=digit, text=text, image=image, audio=audio, sample_rate=SAMPLE_RATE,
                  id=f"digits-{split}-{i:04d}")  # fmt: skip


def load_digits(
    split: str,
    *,
    seed: int = 0,
    limit: int | None = None,
    text_absent_rate: float = 0.25,
    degrade: DigitsDegradation | None = None,
) -> Dataset:
    """The built-in `digits` dataset for one split ("train", "val" or "test"), deterministic per seed."""
    _check_split(split)
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0 or None, got {limit}")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= text_absent_rate <= 1.0:
        raise InputError(f"text_absent_rate must be in [0, 1], got {text_absent_rate}")
    deg = degrade or DigitsDegradation()
    deg.validate()
    scans, targets = _scans(deg.image_size)
    order = _split_scans(targets, split)
    if limit is not None:
        order = order[:limit]
    pools = _clip_pool(split)
    split_id = SPLITS.index(split)
    samples = []
    for i, scan_idx in enumerate(order):
        rng = np.random.default_rng([seed, split_id, i])  # per-sample: `limit` never changes a sample
        digit = int(targets[scan_idx])
        samples.append(_sample(i, scans[scan_idx], digit, pools[digit], rng, split, text_absent_rate, deg))
    log.debug("digits/%s: %d samples (seed %d)", split, len(samples), seed)
    return Dataset(name=f"digits-{split}", labels=list(LABELS), samples=samples)
