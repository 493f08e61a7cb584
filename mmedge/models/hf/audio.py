"""wav2vec2-family speech encoders from `hf:PATH` (wav2vec2, hubert, wavlm, data2vec-audio).

Input: the raw waveform at the feature extractor's sample rate (the bundle's audio spec; runtime
preprocessing stays decode, mono, trim, resample, pad). The extractor's normalization — zero mean, unit
variance per clip when its `do_normalize` is set — is the first op of the graph, so training and every
runtime share it and a quiet microphone looks like a loud one. Output: mean of the last hidden states
over time, then a trainable Linear. In training mode the model applies its own SpecAugment-style time
masking (`mask_time_prob` in config.json) as Hugging Face fine-tuning does.
Blocks: the conv feature encoder, the feature projection (+ positional conv), then each layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.models.hf.architecture import source_folder
from mmedge.models.hf.base import HFEncoder, layer_list, load_hf_model
from mmedge.models.hf.folder import HFFolder
from mmedge.specs import TensorSpec

NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


class ClipNorm(nn.Module):
    """Per-clip zero mean, unit variance over the samples (the feature extractor's do_normalize)."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, S]."""
        centered = wave - wave.mean(dim=1, keepdim=True)
        return centered / torch.sqrt(centered.pow(2).mean(dim=1, keepdim=True) + NORM_EPS)


class SpeechBackbone(nn.Module):
    """(optional per-clip normalization) → wav2vec2-like model → mean over frames → [B, hidden]."""

    def __init__(self, model: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.norm = ClipNorm() if normalize else nn.Identity()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, hidden]."""
        hidden = self.model(input_values=self.norm(waveform)).last_hidden_state
        return hidden.mean(dim=1)  # type: ignore[no-any-return]


class HFSpeechEncoder(HFEncoder):
    """wav2vec2/HuBERT-like (pretrained) backbone on the raw waveform, mean pooled, Linear → D."""

    modality, family = "audio", "wav2vec2"

    def __init__(self, folder: HFFolder, embed_dim: int, samples: int, weights: bool = True) -> None:
        model = load_hf_model(folder, weights)
        config: Any = model.config
        super().__init__(folder, embed_dim, int(config.hidden_size))
        self.samples = samples
        self.normalize = bool(folder.preprocessor().get("do_normalize", True))
        self.backbone = SpeechBackbone(model, self.normalize)

    def input_specs(self) -> list[TensorSpec]:
        """waveform float32 [batch, samples]."""
        return [TensorSpec("waveform", "float32", ("batch", self.samples), batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Conv feature encoder, projection + positional conv (+ pre-norm), layers (+ final norm)."""
        model: Any = self.backbone.model
        encoder = model.encoder
        layers = layer_list(model, "encoder.layers")
        stable = bool(getattr(model.config, "do_stable_layer_norm", False))  # its layer_norm comes last
        early = [model.feature_projection, encoder.pos_conv_embed] + ([] if stable else [encoder.layer_norm])
        late = [nn.ModuleList([layers[-1], encoder.layer_norm])] if stable else layers[-1:]
        return [model.feature_extractor, nn.ModuleList(early), *layers[:-1], *late]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, D]."""
        return self.proj(self.backbone(waveform))  # type: ignore[no-any-return]


def build_hf_audio(c: ModelConfig, _vocab: int) -> HFEncoder:
    """Registry entry 'audio/hf': a wav2vec2-family or Whisper encoder of `audio.encoder = hf:PATH`."""
    folder, weights = source_folder(c.audio.encoder, "audio")
    samples = round(c.audio.sample_rate * c.audio.clip_seconds)
    if folder.family == "whisper":
        from mmedge.models.hf.whisper import HFWhisperEncoder

        return HFWhisperEncoder(folder, c.embed_dim, samples, weights)
    return HFSpeechEncoder(folder, c.embed_dim, samples, weights)
