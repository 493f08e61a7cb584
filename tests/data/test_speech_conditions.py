"""Recording conditions of the built-in spoken digits: each does what it claims; the voice split holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmedge.data.digits import _audio_asset
from mmedge.data.speech_conditions import SpeechCondition, load_digit_speech, record, write_speech_manifest
from mmedge.errors import InputError


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return np.asarray(_audio_asset()["wave"][0], dtype=np.float32)


def test_quiet_trimmed_clip_sits_in_digital_zero_padding(clean: np.ndarray):
    out = record(clean, SpeechCondition(peak_db=-30.0, trim=True, seconds=1.5), np.random.default_rng(0))
    assert out.shape == (12000,) and abs(20 * np.log10(np.abs(out).max()) + 30) < 0.01
    assert (out == 0).mean() > 0.5  # long exact-zero padding, as a padded recording


def test_band_limit_and_sample_rate(clean: np.ndarray):
    out = record(clean, SpeechCondition(lowpass_hz=2000.0, snr_db=(10.0, 10.0), sample_rate=16000),
                 np.random.default_rng(0))
    assert out.shape == (16000,)
    power = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    assert power[freqs > 2100].sum() / power.sum() < 1e-3
    wide = record(clean, SpeechCondition(snr_db=(10.0, 10.0), sample_rate=16000), np.random.default_rng(0))
    wide_power = np.abs(np.fft.rfft(wide)) ** 2
    assert wide_power[freqs > 4500].sum() / wide_power.sum() > 0.01  # 16 kHz noise reaches past 4 kHz


def test_splits_keep_the_held_out_voices_and_are_deterministic():
    sizes = {s: len(load_digit_speech(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 450, "val": 150, "test": 200}
    a, b = load_digit_speech("test", seed=1), load_digit_speech("test", seed=1)
    assert [s.id for s in a.samples] == [s.id for s in b.samples]
    test_ids = {s.id.rsplit("-", 1)[1] for s in a.samples}
    train_ids = {s.id.rsplit("-", 1)[1] for s in load_digit_speech("train").samples}
    assert not test_ids & train_ids


def test_manifest_of_wav_files(tmp_path: Path):
    manifest = write_speech_manifest(tmp_path, SpeechCondition(peak_db=-20.0))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 800 and {r["split"] for r in rows} == {"train", "val", "test"}
    wave, rate = sf.read(str(tmp_path / rows[0]["audio"]))
    assert rate == 8000 and abs(20 * np.log10(np.abs(wave).max()) + 20) < 0.1


def test_bad_condition_is_an_input_error():
    with pytest.raises(InputError, match="invalid SpeechCondition"):
        load_digit_speech("train", SpeechCondition(sample_rate=10))
