"""Request bytes → Samples (torch-free): encoded image/audio files and UTF-8 text, any subset absent.

A served request carries up to three BYTES inputs, one element per row: `text` (UTF-8), `image` (an
encoded file: PNG, JPEG, …) and `audio` (an encoded file: WAV, FLAC, OGG). A modality is absent when its
input is omitted or its element is empty (b""); blank text is absent too, as in `Pipeline.predict`.
Decoding reuses mmedge's own readers and limits, so a served row equals `Pipeline.predict` on the file.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmedge.data.audio import check_header, read_seconds
from mmedge.data.image import max_image_bytes, pil_to_array
from mmedge.data.sample import Sample
from mmedge.errors import InputError

INPUTS: tuple[str, ...] = ("text", "image", "audio")  # the served input names (BYTES, one element per row)


def element(value: Any) -> bytes:
    """One BYTES element as bytes (Triton hands them over as bytes or numpy bytes/object scalars)."""
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value)
    if isinstance(value, str):  # some clients send object arrays of str
        return value.encode("utf-8")
    raise InputError(f"expected a BYTES element, got {type(value).__name__}")


def decode_text(data: bytes) -> str | None:
    """UTF-8 bytes → text (None when empty); InputError for bytes that are not UTF-8."""
    if not data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"text is not valid UTF-8 (byte {exc.start}); send text encoded as UTF-8") from None


def decode_image(data: bytes) -> np.ndarray | None:
    """An encoded image file → uint8 HxW[x3], upright (None when empty); the same limits as image files."""
    from PIL import Image

    if not data:
        return None
    cap = max_image_bytes()
    if len(data) > cap:
        raise InputError(f"image too large: {len(data) / 2**20:.1f} MiB, over the {cap / 2**20:g} MiB limit "
                         "(raise it with MMEDGE_MAX_IMAGE_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap is checked next
            img = Image.open(io.BytesIO(data))
        with img:
            return pil_to_array(img, "the image")
    except InputError:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt data (OSError, SyntaxError, …)
        raise InputError(f"image is not a readable image file ({type(exc).__name__}); send the encoded file "
                         "bytes (PNG, JPEG, …)") from None


def decode_audio(data: bytes, clip_seconds: float | None) -> tuple[np.ndarray, int] | None:
    """An encoded audio file → (float32 mono waveform, rate), read as far as preprocessing reads (None if empty)."""
    import soundfile as sf

    if not data:
        return None
    errors = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = check_header(f.samplerate, f.channels, f.frames, "the audio")
            # As much as preprocessing reads from a file (it searches the clip's loudest window in it).
            frames = f.frames if clip_seconds is None else min(f.frames, math.ceil(read_seconds(clip_seconds) * rate))
            wave = f.read(frames=frames, dtype="float32", always_2d=True)
    except InputError:
        raise
    except errors as exc:
        raise InputError(f"audio is not a readable audio file ({type(exc).__name__}); send the encoded file "
                         "bytes (WAV, FLAC, OGG)") from None
    if wave.shape[0] == 0:
        raise InputError("the audio is empty (0 samples)")
    return wave.mean(axis=1).astype(np.float32), rate  # as mmedge.data.audio.load_audio


def rows_of(inputs: Mapping[str, np.ndarray]) -> int:
    """The number of rows of one request; InputError for unknown inputs or mismatched row counts."""
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; the inputs are {', '.join(INPUTS)}")
    counts = {name: len(np.asarray(value).reshape(len(value), -1)) for name, value in inputs.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"inputs have different row counts: {counts}")
    return next(iter(counts.values()), 0)


def decode_row(inputs: Mapping[str, np.ndarray], row: int, clip_seconds: float | None) -> Sample:
    """Row `row` of a request (arrays [rows, 1] of BYTES) → a Sample; absent = omitted input or empty element."""
    raw = {name: element(np.asarray(inputs[name]).reshape(-1)[row]) if name in inputs else b"" for name in INPUTS}
    audio = decode_audio(raw["audio"], clip_seconds)
    return Sample(label=None, text=decode_text(raw["text"]), image=decode_image(raw["image"]),
                  audio=audio[0] if audio else None, sample_rate=audio[1] if audio else None)


def decode_request(inputs: Mapping[str, np.ndarray], clip_seconds: float | None) -> list[Sample]:
    """Every row of one request → Samples; the first bad row raises an InputError naming it."""
    samples = []
    for row in range(rows_of(inputs)):
        try:
            samples.append(decode_row(inputs, row, clip_seconds))
        except InputError as exc:
            raise InputError(f"row {row}: {exc}") from None
    if not samples:
        raise InputError(f"the request has no rows; send at least one of {', '.join(INPUTS)}")
    return samples
