"""Image decoding and normalisation with Pillow and numpy (torch-free), bounded before anything is decoded.

Limits (checked from the file size and the image header, before pixels are allocated):
`MAX_IMAGE_PIXELS` (default 50 MP; env MMEDGE_MAX_IMAGE_PIXELS) and `MAX_IMAGE_BYTES` (default 100 MiB on
disk; env MMEDGE_MAX_IMAGE_BYTES). Pillow's own `Image.MAX_IMAGE_PIXELS` bomb check still applies on top
(it refuses above twice its value); its error becomes an InputError as well.

Pixel values are scaled by their dtype's range to uint8 — never clipped: uint8 as is; uint16 (and 16-bit
PNGs, Pillow modes I;16/I) divided by 257; bool (and 1-bit images) to 0/255; float in [0, 1] times 255
(a float outside [0, 1], NaN or inf is an InputError). Other integer dtypes are ambiguous (an int64 array
may hold 0..255 or 0..65535) and are refused. EXIF orientation is applied, so phone photos are upright.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmedge.data.conversions import note, note_image
from mmedge.errors import ConfigError, InputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_RESAMPLE = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling values
MAX_IMAGE_PIXELS = 50_000_000  # width x height; env MMEDGE_MAX_IMAGE_PIXELS overrides
MAX_IMAGE_BYTES = 100 * 2**20  # file size on disk; env MMEDGE_MAX_IMAGE_BYTES overrides
IMAGE_TYPES = "a file path (str or pathlib.Path), a PIL.Image.Image or a numpy array (HxW or HxWxC)"
IMAGE_DTYPES = "uint8 (0..255), uint16 (0..65535), bool (0/255) or float in [0, 1]"


def env_limit(name: str, default: int | float) -> float:
    """The positive number in env var `name`, else `default`; ConfigError for a malformed value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def max_image_pixels() -> int:
    """The pixel-count cap: $MMEDGE_MAX_IMAGE_PIXELS, else the module constant MAX_IMAGE_PIXELS."""
    return int(env_limit("MMEDGE_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS))


def max_image_bytes() -> int:
    """The file-size cap: $MMEDGE_MAX_IMAGE_BYTES, else the module constant MAX_IMAGE_BYTES."""
    return int(env_limit("MMEDGE_MAX_IMAGE_BYTES", MAX_IMAGE_BYTES))


def check_pixels(width: int, height: int, what: str) -> None:
    """InputError when width x height is over the pixel cap (call before decoding)."""
    cap = max_image_pixels()
    if width * height > cap:
        raise InputError(f"image too large: {what} is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
                         f"{cap / 1e6:g} MP limit (raise it with MMEDGE_MAX_IMAGE_PIXELS)")


def _bomb_message(path: Path, exc: Exception) -> str:
    """One line for Pillow's DecompressionBombError, naming both limits."""
    from PIL import Image

    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:.1f} MP" if found else "more pixels than Pillow allows"
    return (f"image too large: {path} is {size}, over the {max_image_pixels() / 1e6:g} MP limit "
            f"(MMEDGE_MAX_IMAGE_PIXELS) and over Pillow's decompression-bomb limit of "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:g} MP (2 x PIL.Image.MAX_IMAGE_PIXELS)")


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file → uint8 HxW or HxWx3, upright; InputError for a missing, too large or non-image file."""
    from PIL import Image

    path = Path(os.fsdecode(path))
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    size, cap = path.stat().st_size, max_image_bytes()
    if size > cap:
        raise InputError(f"image file too large: {path} is {size / 2**20:.1f} MiB, over the {cap / 2**20:g} MiB "
                         "limit (raise it with MMEDGE_MAX_IMAGE_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap is checked next
            img = Image.open(path)
        with img:
            return pil_to_array(img, str(path))
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(_bomb_message(path, exc)) from exc
    except Exception as exc:  # Pillow raises many types on corrupt files (OSError, SyntaxError, struct.error…)
        raise InputError(f"not a readable image: {path} ({type(exc).__name__})") from exc


def pil_to_array(img: PILImage, what: str = "the PIL image") -> np.ndarray:
    """A PIL image → uint8 HxW or HxWx3: size checked before loading, EXIF orientation applied, 16-bit scaled."""
    from PIL import ImageOps

    check_pixels(img.width, img.height, what)
    try:
        return _pixels(ImageOps.exif_transpose(img), what)
    except InputError:
        raise
    except Exception as exc:  # a truncated file or broken EXIF surfaces here, when pixels are decoded
        raise InputError(f"not a readable image: {what} ({type(exc).__name__})") from exc


def _pixels(img: PILImage, what: str) -> np.ndarray:
    """The decoded pixels of an upright image as uint8, by Pillow mode."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return np.array(img, dtype=np.uint8)
    if mode == "I":  # 32-bit integer mode: what Pillow gives some 16-bit PNG/TIFF files
        arr = np.asarray(img)
        low, high = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if low < 0 or high > 65535:
            raise InputError(f"{what}: 32-bit integer pixels in {low}..{high} are outside the 16-bit range "
                             "0..65535; convert it to 8 or 16 bits first")
        return to_uint8(arr.astype(np.uint16), what)
    if mode in ("1", "F") or mode.startswith("I;16"):
        return to_uint8(np.asarray(img), what)
    if mode not in ("P", "RGB"):  # a palette is only decoded; CMYK, LA, YCbCr … are converted
        note("image", f"{mode} → RGB (Pillow's conversion)")
    return np.array(img.convert("RGB"), dtype=np.uint8)


def to_uint8(arr: np.ndarray, what: str = "image array") -> np.ndarray:
    """Scale pixel values by their dtype's range to uint8 (see the module docstring); InputError otherwise."""
    kind, itemsize = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if kind == "u" and itemsize == 1:
        return arr.astype(np.uint8, copy=False)
    if kind == "u" and itemsize == 2:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind == "f":
        wide = arr.astype(np.float64)
        if not np.all(np.isfinite(wide)):
            raise InputError(f"{what} contains NaN or infinite values")
        low, high = float(wide.min()), float(wide.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{what}: float pixels must be in [0, 1], got [{low:g}, {high:g}]; divide 0..255 "
                             "data by 255 or pass uint8")
        return np.rint(wide * 255.0).astype(np.uint8)
    raise InputError(f"{what}: unsupported dtype {arr.dtype}; pass {IMAGE_DTYPES}")


def image_array(image: Any) -> np.ndarray:
    """An image given as a path (str/Path), PIL image or numpy array → an array (decoded if needed)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        return image
    if is_pil_image(image):
        return pil_to_array(image)
    raise InputError(f"image must be {IMAGE_TYPES}, got {type(image).__name__}")


def is_pil_image(value: object) -> bool:
    """True for a PIL.Image.Image (without importing Pillow when it is not loaded)."""
    import sys

    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(value, module.Image)


def normalize_image(arr: np.ndarray, size: int, channels: int, mean: list[float], std: list[float],
                    resize: str) -> np.ndarray:
    """HxW[xC] array (any dtype in IMAGE_DTYPES) → resized float32 [C, size, size], (x/255 - mean) / std."""
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        hint = " (channels first? pass HxWxC)" if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) else ""
        raise InputError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}{hint}")
    if resize not in _RESAMPLE:
        raise InputError(f"unknown resize mode '{resize}' (choose from {sorted(_RESAMPLE)})")
    note_image(arr, channels)  # channel conversions are reported once per command
    img = Image.fromarray(np.ascontiguousarray(to_uint8(arr)))
    img = img.convert("L" if channels == 1 else "RGB")
    img = img.resize((size, size), resample=Image.Resampling(_RESAMPLE[resize]))
    out = np.asarray(img, dtype=np.float32) / 255.0
    out = out[None] if channels == 1 else out.transpose(2, 0, 1)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((out - m) / s, dtype=np.float32)
