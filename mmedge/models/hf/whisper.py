"""Whisper's encoder from `hf:PATH`, with Whisper's log-mel front-end inside the graph (DESIGN decision 4).

The front-end reproduces WhisperFeatureExtractor with plain ops: reflect padding by n_fft/2 (the
centered STFT), a Conv1d whose kernels are the Hann-windowed DFT basis, the power spectrum without its
last frame, the folder's own mel filters (a MatMul), log10 floored at 1e-10, clamped to 8 below the
clip's maximum, then (x + 4) / 4. The encoder then runs conv1/conv2, the first T/2 of its fixed
positional embeddings, the layers and the final LayerNorm; the output is the mean over time.

Limit: Whisper was pretrained on 30-s windows (2 × max_source_positions mel frames); a shorter
`audio.clip_seconds` uses only the first positions (Hugging Face's own forward refuses anything but
the full window). Clips longer than the positions are an InputError.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.errors import InputError, require
from mmedge.models.audio_frontend import dft_kernels
from mmedge.models.hf.base import HFEncoder, load_hf_model
from mmedge.models.hf.folder import HFFolder
from mmedge.specs import TensorSpec


class WhisperLogMel(nn.Module):
    """waveform [B, S] → Whisper's normalized log-mel [B, n_mels, S // hop]."""

    def __init__(self, n_fft: int, hop: int, mel_filters: np.ndarray) -> None:
        super().__init__()
        self.n_fft, self.hop, self.n_freq = n_fft, hop, n_fft // 2 + 1
        if mel_filters.shape[0] != self.n_freq:
            raise InputError(f"Whisper mel filters have {mel_filters.shape[0]} bins, n_fft {n_fft} gives {self.n_freq}")
        self.kernels: torch.Tensor
        self.mel: torch.Tensor
        self.register_buffer("kernels", torch.from_numpy(dft_kernels(n_fft)))
        self.register_buffer("mel", torch.from_numpy(np.ascontiguousarray(mel_filters, dtype=np.float32)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """The log-mel spectrogram exactly as WhisperFeatureExtractor computes it (per clip)."""
        pad = self.n_fft // 2
        padded = nn.functional.pad(waveform.unsqueeze(1), (pad, pad), mode="reflect")
        frames = nn.functional.conv1d(padded, self.kernels, stride=self.hop)[:, :, :-1]
        real, imag = frames[:, : self.n_freq], frames[:, self.n_freq :]
        mel = torch.matmul((real * real + imag * imag).transpose(1, 2), self.mel).transpose(1, 2)
        log_spec = torch.log(torch.clamp(mel, min=1e-10)) / math.log(10.0)
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0


class WhisperBackbone(nn.Module):
    """Log-mel front-end → Whisper encoder (first T/2 positions) → mean over time → [B, d_model]."""

    def __init__(self, frontend: WhisperLogMel, encoder: nn.Module) -> None:
        super().__init__()
        self.frontend, self.encoder = frontend, encoder

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, d_model]."""
        enc: Any = self.encoder
        x = nn.functional.gelu(enc.conv1(self.frontend(waveform)))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]].detach()  # fixed sinusoids, as in Whisper
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        for layer in enc.layers:
            if self.training and enc.layerdrop > 0.0 and float(torch.rand([])) < enc.layerdrop:
                continue
            x = layer(x, None)
            x = x[0] if isinstance(x, tuple) else x
        return enc.layer_norm(x).mean(dim=1)  # type: ignore[no-any-return]


def whisper_frontend(folder: HFFolder) -> WhisperLogMel:
    """The front-end with the folder's feature-extractor settings and mel filters."""
    require("transformers", f"Hugging Face encoders (hf:{folder.path})")
    from transformers import WhisperFeatureExtractor

    extractor: Any = WhisperFeatureExtractor.from_pretrained(str(folder.path), local_files_only=True)
    return WhisperLogMel(int(extractor.n_fft), int(extractor.hop_length), np.asarray(extractor.mel_filters))


class HFWhisperEncoder(HFEncoder):
    """Whisper's encoder (pretrained) over the in-graph Whisper log-mel, mean pooled, Linear → D."""

    modality, family = "audio", "whisper"

    def __init__(self, folder: HFFolder, embed_dim: int, samples: int, weights: bool = True) -> None:
        model: Any = load_hf_model(folder, weights)
        encoder = model.get_encoder()
        super().__init__(folder, embed_dim, int(model.config.d_model))
        self.samples = samples
        self.backbone = WhisperBackbone(whisper_frontend(folder), encoder)
        frames = samples // self.backbone.frontend.hop
        if math.ceil(frames / 2) > encoder.embed_positions.num_embeddings:
            raise InputError(f"audio clip of {samples} samples needs {math.ceil(frames / 2)} positions; "
                             f"{folder.path} has {encoder.embed_positions.num_embeddings}")

    def input_specs(self) -> list[TensorSpec]:
        """waveform float32 [batch, samples]."""
        return [TensorSpec("waveform", "float32", ("batch", self.samples), batch_range())]

    def blocks(self) -> list[nn.Module]:
        """The two input convs, then each layer (the final LayerNorm joins the last)."""
        enc: Any = self.backbone.encoder
        layers = list(enc.layers)
        return [nn.ModuleList([enc.conv1, enc.conv2]), *layers[:-1], nn.ModuleList([layers[-1], enc.layer_norm])]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] → [B, D]."""
        return self.proj(self.backbone(waveform))  # type: ignore[no-any-return]
