"""Raw samples as read from a dataset, before preprocessing (torch-free)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from mmedge.data.audio import AUDIO_TYPES
from mmedge.data.image import IMAGE_TYPES, is_pil_image
from mmedge.errors import InputError
from mmedge.specs import MODALITIES

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageInput: TypeAlias = "np.ndarray | str | os.PathLike[str] | PILImage"
AudioInput: TypeAlias = "np.ndarray | str | os.PathLike[str]"


def clean_text(text: Any) -> str | None:
    """None for absent or blank text; InputError for a non-string or a string that is not valid Unicode."""
    if text is None:
        return None
    if not isinstance(text, str):
        hint = " (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise InputError(f"text must be a str or None, got {type(text).__name__}{hint}")
    if not text.strip():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"text is not valid Unicode: unpaired surrogate {text[exc.start]!r} at character "
                         f"{exc.start} (was it decoded with the wrong encoding?)") from None
    return text


def check_media(modality: str, value: Any) -> None:
    """InputError unless `value` is None or a type the modality accepts (see IMAGE_TYPES, AUDIO_TYPES)."""
    if value is None or isinstance(value, (str, os.PathLike, np.ndarray)):
        return
    if modality == "image" and is_pil_image(value):
        return
    accepted = IMAGE_TYPES if modality == "image" else AUDIO_TYPES
    raise InputError(f"{modality} must be {accepted}, got {type(value).__name__}")


@dataclass
class Sample:
    """One example; any modality may be None (absent).

    image: a file path (str/Path), a PIL image, or an array HxW / HxWxC (uint8, uint16, bool or float in [0, 1]).
    audio: a file path (str/Path), or a waveform array at `sample_rate` (float, or int8/int16/int32/uint8 PCM).
    Blank text is absent (None); a value of any other type is an InputError when the sample is made.
    """

    label: int | None
    text: str | None = None
    image: ImageInput | None = None
    audio: AudioInput | None = None
    sample_rate: int | None = None
    id: str = ""

    def __post_init__(self) -> None:
        self.text = clean_text(self.text)
        check_media("image", self.image)
        check_media("audio", self.audio)

    def present(self) -> dict[str, bool]:
        """Which modalities this sample carries (blank text counts as absent)."""
        return {m: (clean_text(self.text) if m == "text" else getattr(self, m)) is not None for m in MODALITIES}


@dataclass
class Dataset:
    """A labelled list of samples; `labels[i]` names class i."""

    name: str
    labels: list[str]
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: list[int]) -> Dataset:
        """A dataset with the samples at `indices`."""
        return Dataset(self.name, self.labels, [self.samples[i] for i in indices])
