"""The tiny preset on recordings-like audio (quiet, long zero padding, 8 kHz band, unseen voices) learns.

Before issue 12 this collapsed to chance (0.165 measured with the old code on the same files): the
fixed training noise (sigma 0.01) buried -30 dB clips, and at eval the zero padding became log-mel
cells the dataset-wide BatchNorm had never seen. Per-clip normalization in the graph and noise at an
SNR relative to each clip fix it at the cause.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from mmedge.data.speech_conditions import SpeechCondition, write_speech_manifest
from mmedge.models.presets import preset_config
from mmedge.train.run import train_run

RECORDINGS_LIKE = SpeechCondition(peak_db=-30.0, snr_db=(30.0, 40.0), lowpass_hz=3400.0, trim=True)


def test_tiny_audio_on_recordings_like_clips_is_far_above_chance(tmp_path: Path):
    manifest = write_speech_manifest(tmp_path / "data", RECORDINGS_LIKE)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    wave, rate = sf.read(str(manifest.parent / rows[0]["audio"]))
    assert rate == 8000 and np.abs(wave).max() < 0.04 and (wave == 0).mean() > 0.3  # quiet, long padding
    cfg = preset_config("tiny")
    cfg.data, cfg.model.modalities = str(manifest), ["audio"]
    cfg.train.epochs = cfg.train.patience = 25
    result = train_run(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    test = result.metrics["test"]["all"]
    assert test["n"] == 200  # the 5 held-out voices x 10 digits x 4 clips
    assert test["accuracy"] >= 0.5, f"tiny audio on recordings-like clips: {test} (chance is 0.1)"
