"""Input conversions are noted by the real preprocessing code and reported once per command."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from mmedge.data import conversions
from mmedge.data.audio import fit_audio, load_audio
from mmedge.data.image import normalize_image


def _image(arr: np.ndarray, channels: int) -> np.ndarray:
    return normalize_image(arr, 8, channels, [0.5] * channels, [0.5] * channels, "bilinear")


def test_image_channel_conversions_are_counted() -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    with conversions.collecting() as counts:
        for _ in range(3):
            _image(rgb, 1)
        _image(np.zeros((10, 10), np.uint8), 3)
        _image(np.zeros((10, 10, 4), np.uint8), 3)
        _image(np.zeros((10, 10), np.uint8), 1)  # already what the model takes: nothing to report
    assert conversions.summary(counts) == [
        "converted input: 3 image(s) RGB → grayscale (the model takes 1 channel)",
        "converted input: 1 image(s) RGBA → RGB (alpha dropped)",
        "converted input: 1 image(s) grayscale → RGB (the model takes 3 channels)",
    ]


def test_decoding_a_cmyk_file_is_a_conversion(tmp_path) -> None:
    from PIL import Image

    from mmedge.data.image import load_image

    Image.new("CMYK", (6, 6), (0, 255, 0, 0)).save(tmp_path / "print.jpg")
    Image.new("P", (6, 6)).save(tmp_path / "palette.png")
    with conversions.collecting() as counts:
        load_image(tmp_path / "print.jpg")
        load_image(tmp_path / "palette.png")  # a palette is only decoded
    assert dict(counts) == {("image", "CMYK → RGB (Pillow's conversion)"): 1}


def test_audio_rate_channels_and_length(tmp_path) -> None:
    path = tmp_path / "stereo16k.wav"
    sf.write(path, np.full((16000 * 2, 2), 0.1, np.float32), 16000)
    with conversions.collecting() as counts:
        wave, rate = load_audio(path, 4.0)
        fit_audio(wave, rate, 8000, 1.0)
        fit_audio(np.zeros(4000, np.float32), 8000, 8000, 1.0)  # short, same rate: padding loses nothing
    assert dict(counts) == {
        ("audio", "2 channels → mono"): 1,
        ("audio", "resampled 16000 Hz → 8000 Hz"): 1,
        ("audio", "longer than the model's 1 s clip: cut (around its loudest part)"): 1,
    }


def test_outside_a_command_each_kind_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mmedge.data.conversions")
    for _ in range(3):
        conversions.note("image", "test-only conversion")
    hits = [r for r in caplog.records if "test-only conversion" in r.getMessage()]
    assert len(hits) == 1 and "reported once" in hits[0].getMessage()
