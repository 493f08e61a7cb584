"""Dataclasses for the model and training configuration, loaded from YAML/TOML/JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mmedge.errors import ConfigError
from mmedge.serialize import from_json, to_json
from mmedge.specs import MODALITIES


@dataclass
class TextConfig:
    """Text encoder: tokenizer and encoder settings."""

    encoder: str = "bag"  # "bag" (token embedding + masked mean) | "minilm"
    max_length: int = 16
    vocab_size: int = 512  # for a WordPiece vocabulary trained on the data (bag encoder)


@dataclass
class ImageConfig:
    """Image encoder and its preprocessing."""

    encoder: str = "cnn"  # "cnn" | "efficientnet_lite0"
    size: int = 32
    channels: int = 1
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.5])
    resize: str = "bilinear"


@dataclass
class AudioConfig:
    """Audio encoder with its in-graph log-mel front-end."""

    encoder: str = "cnn"  # "cnn" | "mobile_cnn"
    sample_rate: int = 8000
    clip_seconds: float = 1.0
    n_fft: int = 256
    hop: int = 128
    n_mels: int = 32


@dataclass
class ModelConfig:
    """The multimodal classifier: which modalities, encoders, fusion op and head."""

    preset: str = "tiny"
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    embed_dim: int = 64
    fusion: str = "concat"
    head_hidden: int = 128
    dropout: float = 0.1
    text: TextConfig = field(default_factory=TextConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)


@dataclass
class TrainConfig:
    """The fine-tuning loop."""

    mode: str = "full"  # full | frozen | lp-ft | partial | lora
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    encoder_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    modality_dropout: float = 0.3
    unimodal_loss: float = 2.0  # weight of the head's loss with each single modality present
    patience: int = 10
    seed: int = 0
    threads: int | None = None
    partial_blocks: int = 1
    lora_rank: int = 8
    lp_epochs: int = 5


@dataclass
class RunConfig:
    """Everything `mmedge train` needs: data source, model and training settings."""

    data: str = "digits"
    name: str = "run"
    limit: int | None = None  # cap on samples per split (quick runs and tests)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML serializable)."""
        return to_json(self)  # type: ignore[no-any-return]

    def digest(self) -> str:
        """Stable hash of the configuration (provenance)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def validate(self) -> RunConfig:
        """Raise ConfigError on impossible settings; return self."""
        mods = self.model.modalities
        if not mods or any(m not in MODALITIES for m in mods) or len(set(mods)) != len(mods):
            raise ConfigError(f"model.modalities must be a non-empty subset of {list(MODALITIES)}, got {mods}")
        self.model.modalities = [m for m in MODALITIES if m in mods]  # canonical order
        if not 0.0 <= self.train.modality_dropout < 1.0:
            raise ConfigError(f"train.modality_dropout must be in [0, 1), got {self.train.modality_dropout}")
        if self.train.epochs < 1 or self.train.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be ≥ 1")
        img = self.model.image
        if len(img.mean) != img.channels or len(img.std) != img.channels:
            raise ConfigError(f"image.mean/std need {img.channels} values (one per channel)")
        return self


T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build a (nested) config dataclass from a dict; ConfigError naming the key path on a bad key or type."""
    try:
        return from_json(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(path: str | Path) -> RunConfig:
    """Load a RunConfig from .yaml/.yml/.toml/.json."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10 (JetPack 6)
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unsupported config format '{path.suffix}' (use .yaml, .toml or .json)")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors of three libraries: one message
        raise ConfigError(f"{path}: cannot parse ({type(exc).__name__}: {exc})") from exc
    return from_dict(RunConfig, data, str(path)).validate()
