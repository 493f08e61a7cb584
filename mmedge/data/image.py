"""Image decoding and normalisation with Pillow and numpy (torch-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmedge.errors import InputError

_RESAMPLE = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling values


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file → uint8 HxW or HxWx3; InputError for a missing or non-image file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB") if img.mode not in ("L", "RGB") else img
            return np.asarray(rgb, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"not a readable image: {path} ({type(exc).__name__})") from exc


def normalize_image(arr: np.ndarray, size: int, channels: int, mean: list[float], std: list[float],
                    resize: str) -> np.ndarray:
    """uint8 HxW[x3] → resized float32 [C, size, size], scaled to [0, 1] then (x - mean) / std."""
    from PIL import Image

    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"image must be HxW or HxWx3, got shape {arr.shape}")
    if resize not in _RESAMPLE:
        raise InputError(f"unknown resize mode '{resize}' (choose from {sorted(_RESAMPLE)})")
    img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    img = img.convert("L" if channels == 1 else "RGB")
    img = img.resize((size, size), resample=Image.Resampling(_RESAMPLE[resize]))
    out = np.asarray(img, dtype=np.float32) / 255.0
    out = out[None] if channels == 1 else out.transpose(2, 0, 1)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((out - m) / s, dtype=np.float32)
