"""User inputs are bounded before decoding and never silently wrong: real files, arrays, paths, text."""

from __future__ import annotations

import struct
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from mmedge.data import audio as audio_mod
from mmedge.data import image as image_mod
from mmedge.data.audio import fit_audio, load_audio
from mmedge.data.image import load_image, normalize_image
from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Sample
from mmedge.errors import ConfigError, InputError
from mmedge.specs import AudioSpec, ImageSpec, Preprocessing

MB = 2**20


def one_line_error(call: Callable[[], Any], cls: type[Exception] = InputError) -> str:
    """The message of the exact exception class `cls` raised by call(); it must be one line."""
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message and "\n" not in message
    return message


def peak_bytes(call: Callable[[], Any]) -> int:
    """Peak Python/numpy allocation (tracemalloc) while running call(), whatever it raises."""
    tracemalloc.start()
    try:
        call()
    except InputError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def crafted_wav(path: Path, rate: int, frames: int, channels: int = 1, head: np.ndarray | None = None) -> Path:
    """A PCM_16 WAV whose header says `rate`/`frames`/`channels`; the data is sparse zeros after `head`."""
    size = frames * channels * 2
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE")
        fh.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16))
        fh.write(b"data" + struct.pack("<I", size))
        if head is not None:
            fh.write(head.astype("<i2").tobytes())
        fh.truncate(44 + size)  # a sparse file: instant, and almost nothing on disk
    return path


@pytest.fixture
def pre() -> Preprocessor:
    """An image (RGB 16x16) + audio (8 kHz, 1 s) preprocessor."""
    spec = Preprocessing(image=ImageSpec(16, 3, [0.0] * 3, [1.0] * 3, "bilinear"), audio=AudioSpec(8000, 1.0))
    return Preprocessor(["image", "audio"], spec)


# ---- images: bounded before decoding ------------------------------------------------------------
def test_huge_dimension_png_is_an_input_error_not_a_pillow_bomb(tmp_path: Path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)  # 400 MP in ~50 KB
    assert path.stat().st_size < 100_000
    message = one_line_error(lambda: load_image(path))
    assert "image too large" in message and "50 MP" in message and str(path) in message


def test_12000_square_png_is_refused_from_its_header(tmp_path: Path):
    path = tmp_path / "big.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 MP: under Pillow's error limit, over ours
    message = one_line_error(lambda: load_image(path))
    assert "12000x12000" in message and "MMEDGE_MAX_IMAGE_PIXELS" in message
    assert peak_bytes(lambda: load_image(path)) < 5 * MB  # decoding it would take ~1.6 GB as float


def test_pixel_and_size_caps_are_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)
    assert load_image(path).shape == (20, 30, 3)
    monkeypatch.setattr(image_mod, "MAX_IMAGE_PIXELS", 500)
    assert "30x20" in one_line_error(lambda: load_image(path))
    monkeypatch.setenv("MMEDGE_MAX_IMAGE_PIXELS", "600")  # the env var wins over the constant
    assert load_image(path).shape == (20, 30, 3)
    monkeypatch.setenv("MMEDGE_MAX_IMAGE_BYTES", "100")
    assert "MMEDGE_MAX_IMAGE_BYTES" in one_line_error(lambda: load_image(path))
    monkeypatch.setenv("MMEDGE_MAX_IMAGE_BYTES", "lots")
    assert "MMEDGE_MAX_IMAGE_BYTES" in one_line_error(lambda: load_image(path), ConfigError)


def test_pil_image_too_large_is_refused_before_loading(tmp_path: Path, pre: Preprocessor):
    path = tmp_path / "big.png"
    Image.new("1", (12000, 12000)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow's own warning, on open
        img = Image.open(path)  # lazy: only the header has been read
    with img:
        assert "12000x12000" in one_line_error(lambda: pre.image(img))


# ---- images: upright and scaled by dtype, never clipped ------------------------------------------
def test_exif_orientation_is_applied(tmp_path: Path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20], pixels[:, 20:] = (255, 0, 0), (0, 0, 255)  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as phones write it
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[2, 10, 0] > 200 and upright[2, 10, 2] < 50  # the left side is now on top
    assert upright[-3, 10, 2] > 200 and upright[-3, 10, 0] < 50


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path, pre: Preprocessor):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode in ("I;16", "I")
    out = load_image(tmp_path / "deep.png")
    expected = ((ramp.astype(np.uint32) + 128) // 257).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert 120 < out.mean() < 135  # clipping to 255 would give ~254
    np.testing.assert_array_equal(pre.image(tmp_path / "deep.png"), pre.image(expected))


@pytest.mark.parametrize(("arr", "as_uint8"), [
    (np.array([[0, 257, 65535]], dtype=np.uint16), [[0, 1, 255]]),
    (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [[0, 128, 255]]),
    (np.array([[0.0, 1.0]], dtype=np.float16), [[0, 255]]),
    (np.array([[False, True]]), [[0, 255]]),
    (np.array([[7, 200]], dtype=np.uint8), [[7, 200]]),
])  # fmt: skip
def test_arrays_are_scaled_by_their_dtype_range(arr: np.ndarray, as_uint8: list[list[int]]):
    np.testing.assert_array_equal(image_mod.to_uint8(arr), np.array(as_uint8, dtype=np.uint8))
    reference = normalize_image(np.array(as_uint8, dtype=np.uint8), 4, 1, [0.0], [1.0], "nearest")
    np.testing.assert_array_equal(normalize_image(arr, 4, 1, [0.0], [1.0], "nearest"), reference)


@pytest.mark.parametrize(("arr", "words"), [
    (np.full((4, 4), 1.5, dtype=np.float32), "[0, 1]"),
    (np.full((4, 4), 255.0), "[0, 1]"),
    (np.full((4, 4), np.nan, dtype=np.float32), "NaN"),
    (np.full((4, 4), 3, dtype=np.int64), "unsupported dtype int64"),
    (np.full((4, 4), 3, dtype=np.int16), "unsupported dtype int16"),
    (np.zeros((4, 4), dtype=np.complex64), "unsupported dtype"),
    (np.zeros((3, 8, 8), dtype=np.uint8), "channels first"),
    (np.zeros((0, 8), dtype=np.uint8), "got shape"),
])  # fmt: skip
def test_ambiguous_arrays_are_refused(pre: Preprocessor, arr: np.ndarray, words: str):
    assert words in one_line_error(lambda: pre.image(arr))


_dtypes = st.sampled_from([np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64, np.float16,
                           np.float32, np.float64, np.bool_, np.complex64])
_image_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arr=_dtypes.flatmap(lambda dt: hnp.arrays(dt, _image_shapes)))
def test_any_image_array_gives_finite_pixels_or_input_error(pre: Preprocessor, arr: np.ndarray):
    try:
        out = pre.image(arr)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert out.shape == (3, 16, 16) and np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0


# ---- paths, PIL images and anything else -----------------------------------------------------------
def test_paths_pil_images_and_arrays_are_accepted(tmp_path: Path, pre: Preprocessor):
    pixels = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    sf.write(tmp_path / "x.wav", np.sin(np.arange(4000) / 5.0).astype(np.float32), 8000)
    expected = pre.image(pixels)
    for given_image in (tmp_path / "x.png", str(tmp_path / "x.png"), Image.open(tmp_path / "x.png")):
        np.testing.assert_array_equal(pre.image(given_image), expected)
    wave, rate = load_audio(tmp_path / "x.wav")
    np.testing.assert_array_equal(pre.audio(tmp_path / "x.wav", None), pre.audio(wave, rate))
    sample = Sample(label=None, image=tmp_path / "x.png", audio=tmp_path / "x.wav")
    batch = pre.batch([sample])
    np.testing.assert_array_equal(batch.feeds["image"]["pixel_values"][0], expected)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"image": 42}, "image must be a file path (str or pathlib.Path), a PIL.Image.Image or a numpy array"),
    ({"image": [[0, 1], [2, 3]]}, "got list"),
    ({"audio": b"RIFF"}, "audio must be a file path (str or pathlib.Path) or a numpy array"),
    ({"text": 7}, "text must be a str or None, got int"),
    ({"text": b"hello"}, "decode bytes first"),
    ({"text": "caf\udce9"}, "not valid Unicode"),
])  # fmt: skip
def test_other_types_are_refused_when_the_sample_is_made(kwargs: dict[str, Any], words: str):
    assert words in one_line_error(lambda: Sample(label=None, **kwargs))


def test_preprocessor_refuses_other_types_too(pre: Preprocessor):
    assert "got dict" in one_line_error(lambda: pre.image({"path": "x.png"}))  # type: ignore[arg-type]
    assert "got list" in one_line_error(lambda: pre.audio([0.0, 0.1], 8000))  # type: ignore[arg-type]


@pytest.mark.parametrize("blank", ["", "   ", "\t\n "])
def test_blank_text_is_absent(blank: str):
    sample = Sample(label=None, text=blank, image=np.zeros((2, 2), dtype=np.uint8))
    assert sample.text is None and sample.present() == {"text": False, "image": True, "audio": False}


# ---- audio: header checked before reading, only the clip read, trimmed before resampling -------------
def test_wav_header_claiming_1_hz_is_refused(tmp_path: Path, pre: Preprocessor):
    path = crafted_wav(tmp_path / "one_hz.wav", rate=1, frames=300)
    assert "sample rate 1 Hz is outside the supported 1000..384000 Hz" in one_line_error(lambda: load_audio(path))
    assert peak_bytes(lambda: pre.audio(path, None)) < 1 * MB  # resampling 1 Hz → 8 kHz would not be


def test_wav_header_with_too_many_channels_is_refused(tmp_path: Path):
    path = crafted_wav(tmp_path / "many.wav", rate=8000, frames=100, channels=64)
    assert "64 audio channels, expected 1..32" in one_line_error(lambda: load_audio(path))


def test_audio_over_the_duration_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = crafted_wav(tmp_path / "hour.wav", rate=8000, frames=8000 * 3600)
    assert "3600.0 s, over the 600 s limit" in one_line_error(lambda: load_audio(path))
    monkeypatch.setenv("MMEDGE_MAX_AUDIO_SECONDS", "4000")
    assert load_audio(path, clip_seconds=1.0)[0].shape == (8000,)


def test_long_96khz_file_reads_and_resamples_only_the_clip(tmp_path: Path, pre: Preprocessor):
    rate = 96000
    first = (np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate) * 16000).astype(np.int16)
    path = crafted_wav(tmp_path / "long.wav", rate=rate, frames=rate * 600, head=first)  # 10 min, 110 MiB
    assert sf.info(str(path)).duration == 600.0
    wave, got_rate = load_audio(path, clip_seconds=1.0)
    assert got_rate == rate and wave.shape == (rate,)
    out = pre.audio(path, None)  # the loudest 1 s of the first 4 s: the middle of the 2 s tone (cut around energy)
    np.testing.assert_allclose(out, fit_audio(first[rate // 2 : rate // 2 + rate], rate, 8000, 1.0), atol=1e-6)
    assert peak_bytes(lambda: pre.audio(path, None)) < 8 * MB  # reading it all would be 220 MiB as float32


def test_long_array_is_trimmed_before_resampling():
    wave = np.zeros(96000 * 120, dtype=np.float32)  # 2 minutes at 96 kHz (44 MiB)
    out = fit_audio(wave, 96000, 16000, 1.0)
    assert out.shape == (16000,)
    assert peak_bytes(lambda: fit_audio(wave, 96000, 16000, 1.0)) < 8 * MB  # a full FFT would take ~180 MiB


@pytest.mark.parametrize(("pcm", "scale"), [
    (np.array([0, 16384, -32768, 32767], dtype=np.int16), 32768.0),
    (np.array([0, 2**30, -(2**31)], dtype=np.int32), 2.0**31),
    (np.array([0, 64, -128], dtype=np.int8), 128.0),
])  # fmt: skip
def test_integer_pcm_arrays_are_scaled_by_their_dtype(pcm: np.ndarray, scale: float):
    out = fit_audio(pcm, 8000, 8000, 0.001)
    np.testing.assert_allclose(out[: len(pcm)], pcm.astype(np.float64) / scale, atol=1e-7)
    assert np.abs(out).max() <= 1.0


def test_uint8_pcm_is_centred():
    out = fit_audio(np.array([128, 255, 0], dtype=np.uint8), 8000, 8000, 0.001)
    np.testing.assert_allclose(out[:3], [0.0, 127 / 128, -1.0])


@pytest.mark.parametrize(("wave", "rate", "words"), [
    (np.zeros(100, dtype=np.int64), 8000, "unsupported dtype int64"),
    (np.zeros(100, dtype=np.uint16), 8000, "unsupported dtype uint16"),
    (np.zeros(100, dtype=bool), 8000, "unsupported dtype bool"),
    (np.array([0.0, np.inf], dtype=np.float32), 8000, "NaN or infinite"),
    (np.zeros(100, dtype=np.float32), 1, "sample rate 1 Hz"),
    (np.zeros(100, dtype=np.float32), 8000.5, "whole number"),
    (np.zeros(100, dtype=np.float32), "8000", "got str"),
    (np.zeros((64, 64), dtype=np.float32), 8000, "at most 32 channels"),
])  # fmt: skip
def test_bad_audio_arrays_are_refused(wave: np.ndarray, rate: Any, words: str):
    assert words in one_line_error(lambda: fit_audio(wave, rate, 8000, 1.0))


_audio_dtypes = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.float16,
                                 np.float32, np.float64, np.bool_])
_audio_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=40)


@settings(max_examples=150, deadline=None)
@given(wave=_audio_dtypes.flatmap(lambda dt: hnp.arrays(dt, _audio_shapes)),
       rate=st.one_of(st.integers(-10, 500_000), st.floats(allow_nan=True), st.none()))
def test_any_audio_array_gives_finite_samples_or_input_error(wave: np.ndarray, rate: Any):
    try:
        out = fit_audio(wave, rate, 8000, 0.01)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert out.shape == (80,) and out.dtype == np.float32 and np.all(np.isfinite(out))


def test_audio_constants_are_documented_defaults():
    assert audio_mod.MAX_AUDIO_SECONDS == 600.0 and image_mod.MAX_IMAGE_PIXELS == 50_000_000
