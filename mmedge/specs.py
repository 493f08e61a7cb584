"""Shared, torch-free vocabulary: modality names, tensor specs, precisions, preprocessing specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from mmedge.errors import ConfigError
from mmedge.serialize import OMIT_NONE, from_json, to_json

MODALITIES: tuple[str, ...] = ("text", "image", "audio")
HEAD = "fusion_head"
COMPONENTS: tuple[str, ...] = (*MODALITIES, HEAD)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one graph input/output; str dims are named dynamic axes."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # axis -> (min, opt, max)

    def to_json(self) -> dict[str, Any]:
        """Serialize for bundle.json."""
        return to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        """Parse from bundle.json."""
        return from_json(cls, data)

    def resolve(self, axis_values: dict[str, int]) -> tuple[int, ...]:
        """Concrete shape with named axes replaced by `axis_values`."""
        return tuple(axis_values[d] if isinstance(d, str) else d for d in self.shape)


def embedding_name(modality: str) -> str:
    """Name of an encoder's output and the matching fusion-head input."""
    return f"{modality}_embedding"


# ---- preprocessing: what any runtime needs to reproduce training-time inputs ------------------
# HF_SPEC_DOC: a spec's optional "hf" object describes a user's Hugging Face encoder (path, family,
# model_type, and what its graph does in-graph, e.g. Whisper's log-mel); the runtime preprocessing
# itself is fully given by the other fields.
@dataclass(frozen=True)
class TextSpec:
    """Tokenizer file (relative to the bundle/run root) and the longest token sequence."""

    tokenizer: str
    max_length: int
    hf: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)  # hf:PATH encoder (HF_SPEC_DOC)


@dataclass(frozen=True)
class ImageSpec:
    """Square resize target, channel count, per-channel mean/std (on [0, 1] pixels), resize filter."""

    size: int
    channels: int
    mean: list[float]
    std: list[float]
    resize: str = "bilinear"
    hf: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)  # hf:PATH encoder (HF_SPEC_DOC)


@dataclass(frozen=True)
class AudioSpec:
    """Sample rate the encoder expects and the clip length every waveform is padded/trimmed to."""

    sample_rate: int
    clip_seconds: float
    hf: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)  # hf:PATH encoder (HF_SPEC_DOC)

    @property
    def samples(self) -> int:
        """Waveform length in samples."""
        return round(self.sample_rate * self.clip_seconds)


ModalitySpec = TextSpec | ImageSpec | AudioSpec
S = TypeVar("S", TextSpec, ImageSpec, AudioSpec)


def _need(spec: S | None, modality: str) -> S:
    if spec is None:
        raise ConfigError(f"no {modality} preprocessing spec: the model was trained without {modality}")
    return spec


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing spec per present modality (bundle.json "preprocessing", run.json too)."""

    text: TextSpec | None = field(default=None, metadata=OMIT_NONE)
    image: ImageSpec | None = field(default=None, metadata=OMIT_NONE)
    audio: AudioSpec | None = field(default=None, metadata=OMIT_NONE)

    def __contains__(self, modality: object) -> bool:
        return modality in MODALITIES and getattr(self, str(modality)) is not None

    def get(self, modality: str) -> ModalitySpec | None:
        """The spec of `modality`, or None when the model has no such input."""
        return getattr(self, modality, None) if modality in MODALITIES else None  # type: ignore[no-any-return]

    def modalities(self) -> list[str]:
        """Modalities with a spec, in canonical order."""
        return [m for m in MODALITIES if m in self]

    def need_text(self) -> TextSpec:
        """The text spec; ConfigError when there is none."""
        return _need(self.text, "text")

    def need_image(self) -> ImageSpec:
        """The image spec; ConfigError when there is none."""
        return _need(self.image, "image")

    def need_audio(self) -> AudioSpec:
        """The audio spec; ConfigError when there is none."""
        return _need(self.audio, "audio")

    def to_json(self) -> dict[str, Any]:
        """The JSON object: one key per present modality."""
        return to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Any, where: str = "preprocessing") -> Preprocessing:
        """Parse (ConfigError naming the key path); an existing Preprocessing passes through."""
        return data if isinstance(data, Preprocessing) else from_json(cls, data, where=where)
