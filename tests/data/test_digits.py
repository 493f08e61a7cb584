"""The built-in `digits` dataset: shapes, determinism, held-out voices, truthful hints, knobs."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from mmedge.data import digits
from mmedge.data.digits import LABELS, SPLITS, DigitsDegradation, load_digits, make_hint, voice_names
from mmedge.errors import InputError

# An independent reading of every phrase a hint may use: phrase -> digits it is true for.
EVEN, ODD = {0, 2, 4, 6, 8}, {1, 3, 5, 7, 9}
PRIME, NOT_PRIME = {2, 3, 5, 7}, {0, 1, 4, 6, 8, 9}
GT4, LT5 = {5, 6, 7, 8, 9}, {0, 1, 2, 3, 4}
DIV3 = {0, 3, 6, 9}
PHRASES: dict[str, set[int]] = {
    "not divisible by two": ODD, "not a prime": NOT_PRIME, "not prime": NOT_PRIME,
    "an even number": EVEN, "even number": EVEN, "even": EVEN,
    "an odd number": ODD, "odd number": ODD, "odd": ODD,
    "a prime number": PRIME, "a prime": PRIME, "prime": PRIME,
    "greater than four": GT4, "more than four": GT4, "at least five": GT4, "above four": GT4,
    "less than five": LT5, "smaller than five": LT5, "at most four": LT5, "below five": LT5,
    "divisible by three": DIV3, "a multiple of three": DIV3, "multiple of three": DIV3,
    "a perfect square": {0, 1, 4, 9}, "perfect square": {0, 1, 4, 9}, "a square number": {0, 1, 4, 9},
    "a power of two": {1, 2, 4, 8}, "power of two": {1, 2, 4, 8},
}  # fmt: skip
FILLER = {"it", "is", "the", "digit", "number", "a", "an", "that", "hint:", "and", ","}


def facts_in(hint: str) -> list[set[int]]:
    """The digit sets of the facts a hint states; fails on any unrecognized word."""
    found, rest = [], hint
    for phrase in sorted(PHRASES, key=len, reverse=True):
        pattern = rf"(?<![a-z]){re.escape(phrase)}(?![a-z])"
        for _ in re.findall(pattern, rest):
            found.append(PHRASES[phrase])
        rest = re.sub(pattern, " ", rest)
    leftover = set(rest.replace(",", " , ").split()) - FILLER
    assert not leftover, f"unrecognized words {leftover} in hint {hint!r}"
    assert found, f"no fact in hint {hint!r}"
    return found


@pytest.fixture(scope="module")
def train_small():
    return load_digits("train", seed=0, limit=40)


def test_unknown_split_is_a_clear_error():
    with pytest.raises(InputError, match=r"unknown digits split 'dev'.*train, val, test"):
        load_digits("dev")


def test_shapes_dtypes_and_labels(train_small):
    assert train_small.labels == LABELS
    assert len(train_small) == 40
    for s in train_small.samples:
        assert s.image.dtype == np.uint8 and s.image.shape == (32, 32)
        assert s.audio.dtype == np.float32 and s.audio.shape == (8000,)
        assert np.abs(s.audio).max() <= 1.0
        assert s.sample_rate == 8000
        assert 0 <= s.label < 10
        assert s.text is None or isinstance(s.text, str)


def test_same_seed_identical_other_seed_different():
    a, b = load_digits("val", seed=3, limit=12), load_digits("val", seed=3, limit=12)
    c = load_digits("val", seed=4, limit=12)
    for x, y in zip(a.samples, b.samples, strict=True):
        assert x.label == y.label and x.text == y.text and x.id == y.id
        assert np.array_equal(x.image, y.image) and np.array_equal(x.audio, y.audio)
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a.samples, c.samples, strict=True))
    assert [x.label for x in a.samples] == [z.label for z in c.samples]  # the scans per split are fixed


def test_limit_never_changes_a_sample():
    short, longer = load_digits("test", limit=5), load_digits("test", limit=20)
    for x, y in zip(short.samples, longer.samples, strict=False):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.audio, y.audio) and x.text == y.text


def test_splits_partition_the_scans_stratified():
    _, targets = digits._scans(8)
    parts = {s: digits._split_scans(targets, s) for s in SPLITS}
    sizes = {s: len(p) for s, p in parts.items()}
    assert sum(sizes.values()) == len(targets) == 1797
    assert 0.68 < sizes["train"] / 1797 < 0.72 and 0.13 < sizes["test"] / 1797 < 0.17
    assert not set(parts["train"]) & set(parts["val"])
    assert not set(parts["train"]) & set(parts["test"]) and not set(parts["val"]) & set(parts["test"])
    for s in SPLITS:
        assert set(targets[parts[s]]) == set(range(10))


def test_test_voices_are_held_out():
    train, val, test = (set(voice_names(s)) for s in SPLITS)
    assert train and test and train == val
    assert not train & test
    assert len(train | test) >= 16
    asset = digits._audio_asset()
    names = [str(v) for v in asset["voices"]]
    pools = {s: np.concatenate(digits._clip_pool(s)) for s in SPLITS}
    for s, pool in pools.items():
        assert {names[v] for v in asset["voice"][pool]} <= set(voice_names(s))
    assert not set(pools["train"]) & set(pools["val"])  # same voices, different clips
    for s in SPLITS:
        for digit in range(10):
            assert np.all(asset["label"][digits._clip_pool(s)[digit]] == digit)


def test_asset_layout():
    asset = digits._audio_asset()
    assert asset["wave"].shape == (len(asset["label"]), 8000) and asset["wave"].dtype == np.float32
    assert int(asset["sample_rate"]) == 8000
    assert set(asset["label"].tolist()) == set(range(10))
    assert digits.ASSET.stat().st_size < 3.5e6


def test_mulaw_decode_range_and_monotonic():
    wave = digits.mulaw_decode(np.arange(256, dtype=np.uint8))
    assert wave[0] == pytest.approx(-1.0) and wave[-1] == pytest.approx(1.0)
    assert np.all(np.diff(wave) > 0)
    assert abs(float(digits.mulaw_decode(np.array([128], dtype=np.uint8))[0])) < 1e-3


@pytest.mark.parametrize("label", range(10))
def test_every_hint_is_true_for_its_label(label):
    rng = np.random.default_rng(label)
    hints = {make_hint(label, rng) for _ in range(400)}
    assert len(hints) > 20  # several phrasings
    assert any(len(facts_in(h)) == 2 for h in hints) and any(len(facts_in(h)) == 1 for h in hints)
    for hint in hints:
        for fact in facts_in(hint):
            assert label in fact, f"hint {hint!r} is false for {LABELS[label]}"


def test_hints_in_the_dataset_are_true_and_partial():
    ds = load_digits("train", seed=1, limit=300)
    texts = [s for s in ds.samples if s.text is not None]
    for s in texts:
        assert all(s.label in fact for fact in facts_in(s.text))
    # partial: on average a hint leaves more than one digit possible
    left = [len(set.intersection(*facts_in(s.text))) for s in texts]
    assert np.mean(left) > 2.0


def test_make_hint_rejects_bad_label():
    with pytest.raises(InputError):
        make_hint(10, np.random.default_rng(0))


def test_absent_text_rate():
    ds = load_digits("train", seed=0, limit=800)
    rate = np.mean([s.text is None for s in ds.samples])
    assert 0.20 < rate < 0.30
    assert all(s.text is not None for s in load_digits("val", text_absent_rate=0.0, limit=50).samples)
    assert all(s.text is None for s in load_digits("val", text_absent_rate=1.0, limit=50).samples)
    with pytest.raises(InputError, match="text_absent_rate"):
        load_digits("val", text_absent_rate=1.5)


def test_no_degradation_gives_the_clean_scan():
    clean = DigitsDegradation(image_shift=0, occlude_prob=0.0, image_noise=0.0, image_size=8)
    ds = load_digits("train", limit=5, degrade=clean)
    scans, targets = digits._scans(8)
    order = digits._split_scans(targets, "train")[:5]
    for s, idx in zip(ds.samples, order, strict=True):
        assert np.array_equal(s.image, scans[idx]) and s.label == targets[idx]


def test_default_degradation_changes_images():
    ds = load_digits("train", limit=20)
    scans, targets = digits._scans(32)
    order = digits._split_scans(targets, "train")[:20]
    diffs = [
        np.abs(s.image.astype(int) - scans[i].astype(int)).mean()
        for s, i in zip(ds.samples, order, strict=True)
    ]
    assert np.mean(diffs) > 10


def test_high_snr_keeps_the_clip():
    quiet = DigitsDegradation(snr_db=(80.0, 80.0))
    s = load_digits("test", limit=1, degrade=quiet).samples[0]
    assert s.audio.shape == (8000,)
    loud = np.abs(s.audio) > 0.05
    assert 0.05 < loud.mean() < 0.9  # the word, surrounded by (near) silence


@pytest.mark.parametrize(
    "kwargs",
    [{"image_size": 4}, {"occlude_prob": 2.0}, {"occlude_frac": (0.6, 0.2)}, {"image_noise": -1.0},
     {"snr_db": (3.0, -3.0)}, {"text_pair_rate": -0.1}, {"image_shift": 20}],
)  # fmt: skip
def test_invalid_degradation_knobs(kwargs):
    with pytest.raises(InputError, match="invalid DigitsDegradation"):
        load_digits("val", limit=1, degrade=DigitsDegradation(**kwargs))


def test_negative_limit_or_seed():
    with pytest.raises(InputError, match="limit"):
        load_digits("val", limit=-1)
    with pytest.raises(InputError, match="seed"):
        load_digits("val", seed=-1)


def test_import_is_torch_and_sklearn_free():
    code = (
        "import sys, mmedge.data.digits, mmedge.data.manifest; "
        "bad = [m for m in ('torch', 'sklearn') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
