"""In-graph log-mel front-end: a Conv1d with the windowed DFT basis, a mel matrix, then log;
then per-clip normalization of that log-mel (ClipNorm).

Only Conv/Mul/Add/MatMul/Log and elementwise/Reduce ops, so it exports with any ONNX exporter and
builds on any TensorRT version (no complex STFT), and training and serving share the exact same module.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

RELATIVE_FLOOR = 1e-6  # the log floor sits 60 dB below the clip's loudest mel cell, so a quiet
LOG_FLOOR = 1e-10  # microphone and a loud one give the same log-mel up to a constant; 1e-10 keeps log(0) out
SILENCE_MARGIN = math.log(10.0)  # 10 dB: a frame whose loudest band is within this of the floor is silence


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
        """Log-mel power with a floor 60 dB below the clip's loudest cell (plus 1e-10 for all-zero input)."""
        frames = nn.functional.conv1d(waveform.unsqueeze(1), self.kernels, stride=self.hop)
        real, imag = frames[:, : self.n_freq], frames[:, self.n_freq :]
        power = real * real + imag * imag  # [B, n_freq, T]
        mel = torch.matmul(power.transpose(1, 2), self.mel)  # [B, T, n_mels]
        peak = mel.amax(dim=(1, 2), keepdim=True)  # the floor follows the clip's level: gain-invariant
        return torch.log(mel + RELATIVE_FLOOR * peak + LOG_FLOOR).transpose(1, 2).unsqueeze(1)


class ClipNorm(nn.Module):
    """Per-clip normalization of a log-mel [B, 1, n_mels, T] over its signal frames.

    Padding frames are those whose every band is within 10 dB of the clip's floor (50 dB or more
    below its peak): digital zeros (zero padding, dropouts), the resampling ripple around them, and
    true silence. Mean and std are taken over time x mel of the other frames only, so neither the
    level nor the amount of zero padding moves the normalized speech; padding frames then take the
    clip's lowest normalized value ("silence"); an all-zero clip is 0.
    Only Reduce*/Sign/Relu/elementwise ops, so it exports and builds anywhere the front-end does.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """[B, 1, M, T] → same shape, zero mean / unit variance over the clip's signal frames."""
        floor = logmel.amin(dim=(1, 2, 3), keepdim=True)
        # relu(sign(x)) is an exact 0/1 step without a bool Cast (which fp16 converters retype)
        mask = torch.relu(torch.sign(logmel.amax(dim=2, keepdim=True) - floor - SILENCE_MARGIN))  # [B, 1, 1, T]
        share = mask.mean(dim=(2, 3), keepdim=True)  # fraction of signal frames
        has_signal = torch.relu(torch.sign(share))
        share = share.clamp(min=1e-6)
        mean = (logmel * mask).mean(dim=(1, 2, 3), keepdim=True) / share
        var = ((logmel - mean) * mask).pow(2).mean(dim=(1, 2, 3), keepdim=True) / share
        z = (logmel - mean) / torch.sqrt(var + self.eps)
        lowest = (z * mask + (1.0 - mask) * 1e4).amin(dim=(1, 2, 3), keepdim=True) * has_signal
        return z * mask + lowest * (1.0 - mask)
