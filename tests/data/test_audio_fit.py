"""fit_audio: long clips cut around their energy; what was cut / padded / resampled counted and logged once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmedge.data.audio import AudioFitStats, fit_audio, loudest_window
from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Dataset, Sample
from mmedge.specs import AudioSpec, Preprocessing


def burst(at_seconds: float, total_seconds: float, rate: int = 8000) -> np.ndarray:
    """Faint noise with a loud 0.3 s tone starting at `at_seconds`."""
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.001, round(total_seconds * rate)).astype(np.float32)
    start = round(at_seconds * rate)
    wave[start : start + round(0.3 * rate)] += 0.5 * np.sin(np.arange(round(0.3 * rate)) * 0.3)
    return wave


def test_a_word_after_a_pause_is_kept_not_cut_away():
    wave = burst(2.2, 3.0)  # the old trim kept the first second: only the faint noise
    out = fit_audio(wave, 8000, 8000, 1.0)
    assert np.abs(out).max() > 0.4
    loud = np.flatnonzero(np.abs(out) > 0.1)
    assert loud[0] > 0.25 * 8000 and loud[-1] < 0.75 * 8000  # the word sits in the middle of the window


def test_loudest_window_centres_the_energy_and_leaves_short_clips_alone():
    wave = np.zeros(40000, dtype=np.float32)
    wave[20000:22000] = 1.0
    start = loudest_window(wave, 8000)
    assert start <= 20000 and start + 8000 >= 22000 and abs((start + 4000) - 21000) <= 200
    assert loudest_window(wave[:5000], 8000) == 0


def test_stats_count_cuts_padding_resampling_and_rates():
    stats = AudioFitStats()
    fit_audio(np.zeros(4000, np.float32), 8000, 16000, 1.0, stats)  # short, resampled
    fit_audio(burst(1.5, 2.0, 16000), 16000, 16000, 1.0, stats)  # long, same rate
    fit_audio(np.zeros(8000, np.float32), 8000, 16000, 1.0, stats)  # exact length, resampled
    assert (stats.clips, stats.cut, stats.padded, stats.resampled) == (3, 1, 1, 2)
    assert stats.rates == {8000: 2, 16000: 1}
    line = stats.summary(1.0, 16000)
    assert "8000 Hz × 2" in line and "1 longer than 1 s cut around their energy" in line
    assert "1 zero-padded" in line and "2 resampled to 16000 Hz" in line


def test_preprocessing_logs_once_per_dataset_with_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from mmedge.train.tensors import tensorize

    sf.write(str(tmp_path / "long.wav"), burst(2.5, 3.0), 8000)
    samples = [Sample(label=0, audio=tmp_path / "long.wav"),
               Sample(label=1, audio=np.zeros(3000, np.float32), sample_rate=16000)]
    pre = Preprocessor(["audio"], Preprocessing(audio=AudioSpec(8000, 1.0)))
    with caplog.at_level(logging.INFO, logger="mmedge.data.preprocess"):
        data = tensorize(Dataset("clips", ["a", "b"], samples), pre)
    lines = [r.getMessage() for r in caplog.records if r.name == "mmedge.data.preprocess"]
    assert lines == ["clips audio: 2 clips (sample rates: 8000 Hz × 1, 16000 Hz × 1): 1 longer than 1 s cut "
                     "around their energy, 1 zero-padded, 1 resampled to 8000 Hz"]
    assert float(data.inputs["waveform"][0].abs().max()) > 0.4  # the file's word at 2.5 s was found
    assert pre.audio_stats.clips == 0  # reset for the next dataset
