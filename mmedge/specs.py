"""Shared, torch-free vocabulary: modality names, tensor specs, precisions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        """Parse from bundle.json."""
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            shape=tuple(data["shape"]),
            ranges={k: (int(v[0]), int(v[1]), int(v[2])) for k, v in data.get("ranges", {}).items()},
        )

    def resolve(self, axis_values: dict[str, int]) -> tuple[int, ...]:
        """Concrete shape with named axes replaced by `axis_values`."""
        return tuple(axis_values[d] if isinstance(d, str) else d for d in self.shape)


def embedding_name(modality: str) -> str:
    """Name of an encoder's output and the matching fusion-head input."""
    return f"{modality}_embedding"
