"""Fill a ModelConfig's preprocessing from its `hf:` folders, before training (torch-free).

The folder decides what the pretrained weights were trained on: image size, mean/std and resize filter
from preprocessor_config.json, the sample rate from the feature extractor, the tokenizer from
tokenizer.json. Each replaced setting is logged once; settings the model cannot take (a ViT at another
size, a Whisper clip over its positions, a text length over its positions) are InputErrors.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

from mmedge.config import AudioConfig, ImageConfig, ModelConfig, TextConfig
from mmedge.errors import InputError
from mmedge.models.hf.folder import HFFolder, hf_folder, is_hf
from mmedge.specs import Preprocessing

log = logging.getLogger(__name__)
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling values mmedge reproduces
ROBERTA_TYPES = ("roberta", "xlm-roberta")  # positions start after the padding index


def hf_folders(model: ModelConfig) -> dict[str, HFFolder]:
    """{modality: checked folder} for every configured modality whose encoder is 'hf:PATH'."""
    return {m: hf_folder(getattr(model, m).encoder, m) for m in model.modalities if is_hf(getattr(model, m).encoder)}


def resolve_hf_config(model: ModelConfig) -> dict[str, HFFolder]:
    """Check every `hf:` folder, make its path absolute, set the preprocessing it needs; return the folders."""
    folders = hf_folders(model)
    for m, folder in folders.items():
        getattr(model, m).encoder = f"hf:{folder.path}"  # every later command works from any directory
        if m == "text":
            _text(model.text, folder)
        elif m == "image":
            _image(model.image, folder)
        else:
            _audio(model.audio, folder)
    return folders


def _text(cfg: TextConfig, folder: HFFolder) -> None:
    positions = int(folder.config.get("max_position_embeddings", 512))
    if folder.model_type in ROBERTA_TYPES:
        positions -= int(folder.config.get("pad_token_id", 1)) + 1
    if cfg.max_length > positions:
        raise InputError(f"text.max_length {cfg.max_length} is over the {positions} positions of {folder.path}")
    log.info("text encoder %s (%s): its own tokenizer.json, max_length %d", folder.path, folder.model_type,
             cfg.max_length)


def image_size(pre: dict[str, Any], where: str) -> int:
    """The square input size an image processor produces (crop size when it center-crops)."""
    size = pre.get("crop_size") if pre.get("do_center_crop") and pre.get("crop_size") else pre.get("size")
    if isinstance(size, int):
        return size
    if isinstance(size, dict) and "shortest_edge" in size:
        return int(size["shortest_edge"])
    if isinstance(size, dict) and size.get("height") == size.get("width") and size.get("height"):
        return int(size["height"])
    raise InputError(f"{where}: image size {size!r} is not square; mmedge image encoders take square inputs")


def _image(cfg: ImageConfig, folder: HFFolder) -> None:
    pre, where = folder.preprocessor(), f"{folder.path}/preprocessor_config.json"
    size = image_size(pre, where)
    if folder.family == "vit" and int(folder.config.get("image_size", size)) != size:
        raise InputError(f"{where}: size {size} differs from the model's image_size {folder.config['image_size']}")
    if pre.get("do_rescale", True) and not math.isclose(float(pre.get("rescale_factor", 1 / 255)), 1 / 255):
        raise InputError(f"{where}: rescale_factor {pre['rescale_factor']} (mmedge scales pixels by 1/255)")
    resample = int(pre.get("resample", 2))
    if resample not in RESAMPLE:
        raise InputError(f"{where}: resample {resample} is not supported (choose {sorted(RESAMPLE)} = "
                         f"{', '.join(RESAMPLE.values())})")
    channels = int(folder.config.get("num_channels", 3))
    normalize = pre.get("do_normalize", True)
    mean = [float(v) for v in pre.get("image_mean", [0.0] * channels)] if normalize else [0.0] * channels
    std = [float(v) for v in pre.get("image_std", [1.0] * channels)] if normalize else [1.0] * channels
    if len(mean) != channels or len(std) != channels:
        raise InputError(f"{where}: image_mean/image_std need {channels} values")
    cfg.size, cfg.channels, cfg.mean, cfg.std, cfg.resize = size, channels, mean, std, RESAMPLE[resample]
    crop = pre.get("crop_pct")
    if crop and float(crop) < 1.0 and size < 384:
        log.warning("%s: crop_pct %s is not reproduced; the whole image is resized to %d×%d (fine-tuning "
                    "adapts to it)", where, crop, size, size)
    log.info("image encoder %s (%s): %d×%d, %s resize, mean %s, std %s", folder.path, folder.model_type, size,
             size, cfg.resize, mean, std)


def _audio(cfg: AudioConfig, folder: HFFolder) -> None:
    pre, where = folder.preprocessor(), f"{folder.path}/preprocessor_config.json"
    rate = pre.get("sampling_rate")
    if not isinstance(rate, int) or rate <= 0:
        raise InputError(f"{where}: needs an integer sampling_rate, got {rate!r}")
    if rate != cfg.sample_rate:
        log.info("audio encoder %s: sample rate %d Hz from its feature extractor (config said %d)", folder.path,
                 rate, cfg.sample_rate)
    cfg.sample_rate = rate
    samples = round(rate * cfg.clip_seconds)
    if folder.family == "whisper":
        check_whisper_clip(pre, folder.config, samples, where)
    log.info("audio encoder %s (%s): %d Hz, %g s clips", folder.path, folder.model_type, rate, cfg.clip_seconds)


def check_whisper_clip(pre: dict[str, Any], config: dict[str, Any], samples: int, where: str) -> None:
    """InputError unless the clip's mel frames fit the encoder's positions and the mel count matches."""
    hop = int(pre.get("hop_length", 160))
    mels, want = int(pre.get("feature_size", 80)), int(config.get("num_mel_bins", 80))
    if mels != want:
        raise InputError(f"{where}: feature_size {mels} differs from the model's num_mel_bins {want}")
    positions = int(config.get("max_source_positions", 1500))
    if math.ceil((samples // hop) / 2) > positions:
        longest = 2 * positions * hop / int(pre["sampling_rate"])
        raise InputError(f"audio clip of {samples} samples is longer than this Whisper encoder takes "
                         f"({positions} positions = {longest:g} s); lower --clip-seconds (audio.clip_seconds)")
    if samples // hop < 2:
        raise InputError(f"audio clip of {samples} samples is shorter than two mel frames (hop {hop})")


def in_graph(folder: HFFolder) -> str:
    """What the exported encoder graph does to its raw input before the pretrained model."""
    if folder.family == "whisper":
        pre = folder.preprocessor()
        return (f"Whisper log-mel: n_fft {pre.get('n_fft', 400)}, hop {pre.get('hop_length', 160)}, "
                f"{pre.get('feature_size', 80)} mel filters of the folder, log10, max-8 floor, (x+4)/4")
    if folder.modality == "audio":
        norm = folder.preprocessor().get("do_normalize", True)
        return "per-clip zero mean, unit variance" if norm else "none (do_normalize is false)"
    return "none"


def with_hf_specs(spec: Preprocessing, folders: dict[str, HFFolder]) -> Preprocessing:
    """`spec` with each hf: modality's spec carrying its encoder description (bundle.json 'hf')."""
    changes: dict[str, Any] = {}
    for m, folder in folders.items():
        current: Any = spec.get(m)
        if current is not None:
            changes[m] = replace(current, hf={**folder.describe(), "in_graph": in_graph(folder)})
    return replace(spec, **changes)
