"""Per-modality encoders of the `tiny` preset and the encoder registry.

Every encoder maps its modality's preprocessed tensors to a [batch, D] embedding and
declares its ONNX inputs, so export and runtime agree on names, dtypes and dynamic axes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.errors import ConfigError
from mmedge.models.audio_frontend import ClipNorm, LogMel
from mmedge.registry import Registry
from mmedge.specs import TensorSpec


class Encoder(nn.Module):
    """Base class: `forward(*inputs) -> [batch, D]` plus its input specs."""

    modality: str = ""
    embed_dim: int = 0

    def input_specs(self) -> list[TensorSpec]:
        """Names, dtypes and dynamic axes of the forward inputs, in order."""
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        """Ordered trainable blocks (for partial fine-tuning: the last k get unfrozen)."""
        return list(self.children())


class BagOfTokensEncoder(Encoder):
    """Token embedding + attention-masked mean (word-embedding baseline) + projection."""

    modality = "text"

    def __init__(self, vocab_size: int, embed_dim: int, max_length: int) -> None:
        super().__init__()
        self.embed_dim, self.max_length = embed_dim, max_length
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))

    def input_specs(self) -> list[TensorSpec]:
        """input_ids and attention_mask, int64 [batch, seq]."""
        ranges = {**batch_range(), "seq": (1, self.max_length, self.max_length)}
        return [TensorSpec("input_ids", "int64", ("batch", "seq"), ranges),
                TensorSpec("attention_mask", "int64", ("batch", "seq"), ranges)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Masked mean of token embeddings, then an MLP."""
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        summed = (self.embedding(input_ids) * mask).sum(dim=1)
        return self.proj(summed / mask.sum(dim=1).clamp(min=1.0))


def conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3×3 conv → BatchNorm → ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling, linear projection to D."""

    def __init__(self, cin: int, embed_dim: int, widths: tuple[int, int, int] = (16, 32, 64),
                 first_stride: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_block(cin, widths[0], first_stride), conv_block(widths[0], widths[1], 2),
                                      conv_block(widths[1], widths[2], 2))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[2], embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, D]."""
        return self.proj(self.features(x).mean(dim=(2, 3)))


class ImageCNNEncoder(Encoder):
    """Small CNN over normalized pixels [batch, C, H, W] (training augmentation: mmedge.train.augment)."""

    modality = "image"

    def __init__(self, channels: int, size: int, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim, self.channels, self.size = embed_dim, channels, size
        self.cnn = SmallCNN(channels, embed_dim)

    def input_specs(self) -> list[TensorSpec]:
        """pixel_values float32 [batch, C, H, W]."""
        return [TensorSpec("pixel_values", "float32", ("batch", self.channels, self.size, self.size),
                           batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Conv blocks then the projection."""
        return [*self.cnn.features, self.cnn.proj]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, D]."""
        return self.cnn(pixel_values)


class AudioCNNEncoder(Encoder):
    """In-graph log-mel front-end, per-clip normalization (ClipNorm), small CNN.

    Training-only augmentation (waveform and SpecAugment) is attached by mmedge.train.augment.
    """

    modality = "audio"

    def __init__(self, sample_rate: int, clip_seconds: float, n_fft: int, hop: int, n_mels: int,
                 embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.samples = round(sample_rate * clip_seconds)
        self.frontend = LogMel(sample_rate, n_fft, hop, n_mels)
        self.norm = ClipNorm()
        self.cnn = SmallCNN(1, embed_dim, first_stride=2)

    def input_specs(self) -> list[TensorSpec]:
        """waveform float32 [batch, samples]."""
        return [TensorSpec("waveform", "float32", ("batch", self.samples), batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Conv blocks, projection (the front-end and the per-clip norm have no weights)."""
        return [*self.cnn.features, self.cnn.proj]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, D]."""
        return self.cnn(self.norm(self.frontend(waveform)))


EncoderBuilder = Callable[[ModelConfig, int], Encoder]


def build_bag(c: ModelConfig, vocab: int) -> Encoder:
    """Token embedding + masked mean (the `tiny` text encoder)."""
    return BagOfTokensEncoder(vocab, c.embed_dim, c.text.max_length)


def build_image_cnn(c: ModelConfig, _vocab: int) -> Encoder:
    """Small image CNN trained from scratch."""
    return ImageCNNEncoder(c.image.channels, c.image.size, c.embed_dim)


def build_audio_cnn(c: ModelConfig, _vocab: int) -> Encoder:
    """Small audio CNN over the in-graph log-mel."""
    a = c.audio
    return AudioCNNEncoder(a.sample_rate, a.clip_seconds, a.n_fft, a.hop, a.n_mels, c.embed_dim)


# "modality/name" → builder(ModelConfig, vocab_size); the pretrained ones import torch hub code only when used.
ENCODERS: Registry[EncoderBuilder] = Registry("encoder", {
    "text/bag": "mmedge.models.encoders:build_bag",
    "image/cnn": "mmedge.models.encoders:build_image_cnn",
    "audio/cnn": "mmedge.models.encoders:build_audio_cnn",
    "text/minilm": "mmedge.models.pretrained:build_minilm",
    "image/efficientnet_lite0": "mmedge.models.pretrained:build_efficientnet_lite0",
    "audio/mobile_cnn": "mmedge.models.pretrained:build_mobile_cnn",
    # `hf:PATH` names (a local Hugging Face folder) build through these (mmedge.models.hf)
    "text/hf": "mmedge.models.hf.text:build_hf_text",
    "image/hf": "mmedge.models.hf.image:build_hf_image",
    "audio/hf": "mmedge.models.hf.audio:build_hf_audio",
})


def encoder_key(modality: str, name: str) -> str:
    """Registry key of an encoder: 'modality/name'."""
    return f"{modality}/{name}"


def register_encoder(modality: str, name: str, builder: EncoderBuilder | str) -> None:
    """Add an encoder: a builder function or its 'package.module:function' (imported on first use)."""
    ENCODERS.register(encoder_key(modality, name), builder)


def encoder_names(modality: str) -> list[str]:
    """Registered encoder names of one modality."""
    return [k.split("/", 1)[1] for k in ENCODERS.names() if k.startswith(f"{modality}/")]


def build_encoder(modality: str, cfg: ModelConfig, vocab_size: int = 0) -> Encoder:
    """Instantiate the configured encoder of `modality`."""
    name = getattr(cfg, modality).encoder
    key = encoder_key(modality, "hf" if name.startswith("hf:") else name)  # hf:PATH → the family's builder
    if key not in ENCODERS or name == "hf":
        known = [n for n in encoder_names(modality) if n != "hf"]
        raise ConfigError(f"unknown {modality} encoder '{name}' (known: {', '.join(known)}, or hf:PATH)")
    return ENCODERS.get(key)(cfg, vocab_size)
