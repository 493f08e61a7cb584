"""In-graph log-mel front-end: a Conv1d with the windowed DFT basis, a mel matrix, then log.

Only Conv/Mul/Add/MatMul/Log ops, so it exports with any ONNX exporter and builds on any
TensorRT version (no complex STFT), and training and serving share the exact same module.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of hz_to_mel."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 20.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters as a [n_freq, n_mels] float32 matrix."""
    fmax = fmax or sample_rate / 2
    n_freq = n_fft // 2 + 1
    freqs = np.linspace(0, sample_rate / 2, n_freq)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    bank = np.zeros((n_freq, n_mels), dtype=np.float64)
    for i in range(n_mels):
        lo, mid, hi = mel_points[i], mel_points[i + 1], mel_points[i + 2]
        rising = (freqs - lo) / max(mid - lo, 1e-9)
        falling = (hi - freqs) / max(hi - mid, 1e-9)
        bank[:, i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank.astype(np.float32)


def dft_kernels(n_fft: int) -> np.ndarray:
    """Hann-windowed cos/sin DFT basis as Conv1d weights [2 * n_freq, 1, n_fft]."""
    n_freq = n_fft // 2 + 1
    window = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    t = np.arange(n_fft)[None, :]
    k = np.arange(n_freq)[:, None]
    angle = 2 * math.pi * k * t / n_fft
    real = np.cos(angle) * window
    imag = -np.sin(angle) * window
    return np.concatenate([real, imag], axis=0)[:, None, :].astype(np.float32)


class LogMel(nn.Module):
    """waveform [B, S] → log-mel [B, 1, n_mels, frames]."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int) -> None:
        super().__init__()
        self.n_freq = n_fft // 2 + 1
        self.hop = hop
        self.kernels: torch.Tensor
        self.mel: torch.Tensor
        self.register_buffer("kernels", torch.from_numpy(dft_kernels(n_fft)))
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute the log-mel spectrogram (power, natural log, floor 1e-6)."""
        frames = nn.functional.conv1d(waveform.unsqueeze(1), self.kernels, stride=self.hop)
        real, imag = frames[:, : self.n_freq], frames[:, self.n_freq :]
        power = real * real + imag * imag  # [B, n_freq, T]
        mel = torch.matmul(power.transpose(1, 2), self.mel)  # [B, T, n_mels]
        return torch.log(mel + 1e-6).transpose(1, 2).unsqueeze(1)


def n_frames(samples: int, n_fft: int, hop: int) -> int:
    """Number of frames the front-end yields for `samples` input samples."""
    return (samples - n_fft) // hop + 1
