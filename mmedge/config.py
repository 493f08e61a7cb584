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

MONITORS: dict[str, str] = {"val_loss": "min", "val_macro_f1": "max", "val_accuracy": "max"}  # name → better
TRAIN_DEVICES = ("auto", "cpu", "cuda")  # train.device


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
class AudioAugmentConfig:
    """Training-only waveform + log-mel augmentation of every trainable audio encoder (see docs/audio.md)."""

    enabled: bool = True
    crop_factor: float = 1.5  # train audio read at up to crop_factor × the clip, random-cropped per batch (1: off)
    gain_db: float = 6.0  # uniform gain in ±gain_db
    shift: float = 0.1  # max time shift as a fraction of the clip; the uncovered part is zeros
    speed: float = 0.08  # speed/pitch factor in 1 ± speed (resampling), with probability speed_prob
    speed_prob: float = 0.3
    noise_prob: float = 0.5  # white noise at an SNR relative to the clip's own level
    snr_db: list[float] = field(default_factory=lambda: [10.0, 40.0])
    lowpass_prob: float = 0.3  # random low-pass (cutoff in lowpass_hz, capped at Nyquist): 8 kHz mics
    lowpass_hz: list[float] = field(default_factory=lambda: [2500.0, 7000.0])
    time_masks: int = 1  # SpecAugment masks on the normalized log-mel (more cost the tiny model accuracy)
    time_mask: float = 0.08  # max width of each, as a fraction of the frames
    freq_masks: int = 1
    freq_mask: float = 0.1  # max width of each, as a fraction of the mel bands


@dataclass
class ImageAugmentConfig:
    """Training-only image augmentation; flips only where the labels allow (digits: no flips)."""

    enabled: bool = True
    hflip: bool = False  # label-safe only if a mirrored sample has the same label (not digits, not text)
    vflip: bool = False
    shift: float = 0.12  # max translation, fraction of the side
    rotate: float = 0.2  # max rotation, radians
    scale: float = 0.1  # zoom in 1 ± scale
    brightness: float = 0.0  # additive offset in ± brightness (normalized pixel units)
    contrast: float = 0.0  # multiplicative factor in 1 ± contrast
    noise: float = 0.1  # std of additive Gaussian noise (normalized pixel units)


@dataclass
class TextAugmentConfig:
    """Training-only text augmentation: token dropout (off by default: dropping 'not' flips a hint's meaning)."""

    token_dropout: float = 0.0


@dataclass
class AugmentConfig:
    """Training-only augmentation per modality (applied by mmedge.train.augment, never exported)."""

    audio: AudioAugmentConfig = field(default_factory=AudioAugmentConfig)
    image: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)
    text: TextAugmentConfig = field(default_factory=TextAugmentConfig)


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
    monitor: str = "val_loss"  # what picks the best epoch and early stopping: val_loss | val_macro_f1 | val_accuracy
    patience: int = 10  # epochs without an improvement > min_delta before the phase stops
    min_delta: float = 0.0
    seed: int = 0
    threads: int | None = None
    device: str = "auto"  # auto | cpu | cuda (auto: CUDA when torch sees a GPU, else the CPU)
    partial_blocks: int = 1
    lora_rank: int = 8
    lp_epochs: int = 5
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class RunConfig:
    """Everything `mmedge train` needs: data source, model and training settings."""

    data: str = "digits"
    name: str = "run"
    limit: int | None = None  # cap on samples per split (quick runs and tests)
    split_seed: int = 0  # seed of a manifest's automatic group-disjoint split
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML serializable)."""
        return to_json(self)  # type: ignore[no-any-return]

    def digest(self) -> str:
        """Stable hash of the configuration (provenance); train.device is left out: a run resumes on another device."""
        data = self.to_dict()
        data.get("train", {}).pop("device", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def validate(self) -> RunConfig:
        """Raise ConfigError on impossible settings; return self."""
        mods = self.model.modalities
        if not mods or any(m not in MODALITIES for m in mods) or len(set(mods)) != len(mods):
            raise ConfigError(f"model.modalities must be a non-empty subset of {list(MODALITIES)}, got {mods}")
        self.model.modalities = [m for m in MODALITIES if m in mods]  # canonical order
        if not 0.0 <= self.train.modality_dropout < 1.0:
            raise ConfigError(f"train.modality_dropout must be in [0, 1), got {self.train.modality_dropout}")
        if self.train.epochs < 1 or self.train.batch_size < 1 or self.train.patience < 1:
            raise ConfigError("train.epochs, train.batch_size and train.patience must be ≥ 1")
        if self.train.device not in TRAIN_DEVICES:
            raise ConfigError(f"train.device must be one of {', '.join(TRAIN_DEVICES)}, got '{self.train.device}'")
        if self.train.monitor not in MONITORS:
            raise ConfigError(f"train.monitor must be one of {', '.join(MONITORS)}, got '{self.train.monitor}'")
        if self.train.min_delta < 0:
            raise ConfigError(f"train.min_delta must be ≥ 0, got {self.train.min_delta}")
        if self.model.audio.clip_seconds <= 0:
            raise ConfigError(f"model.audio.clip_seconds must be > 0, got {self.model.audio.clip_seconds}")
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


def read_config_data(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a .yaml/.yml/.toml/.json config file (ConfigError if unreadable or not a mapping)."""
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
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on top: nested mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def flat_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaf settings of a nested mapping ('train.epochs', …)."""
    keys: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        keys += flat_keys(value, f"{name}.") if isinstance(value, dict) and value else [name]
    return keys


def load_config(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Load a RunConfig from .yaml/.yml/.toml/.json; with `base`, the file overrides only what it names."""
    data = read_config_data(path)
    if base is not None:
        data = merge(base.to_dict(), data)
    return from_dict(RunConfig, data, str(path)).validate()
