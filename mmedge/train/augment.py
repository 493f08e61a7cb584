"""Training-only augmentation for every modality, attached to a model's encoders as forward hooks.

The hooks act only while an encoder is in training mode, i.e. on the loop's training batches;
validation, evaluation and export run encoders in eval mode, so nothing here reaches an ONNX graph
(and the encoders stay free of training code). Frozen encoders whose features are cached are never
called while training, so they are never augmented. All randomness comes from one seeded generator.

audio (waveform [B, S]): random crop of longer clips → gain → speed/pitch (resampling) + time shift
(zero fill) → random low-pass (band-limited microphones) → white noise at an SNR relative to the clip's
own level, only over the recorded span (digital zero padding stays zero, as in real files); then
SpecAugment time/frequency masks on the per-clip-normalized log-mel (a hook on the encoder's ClipNorm).
image (pixel_values [B, C, H, W]): optional flips (only where label-safe), affine jitter, brightness,
contrast, noise. text (input_ids, attention_mask): token dropout (the first token is always kept).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mmedge.config import AudioAugmentConfig, AugmentConfig, ImageAugmentConfig, TextAugmentConfig
from mmedge.data.audio import ENERGY_SEARCH_CLIPS
from mmedge.errors import ConfigError
from mmedge.models.audio_frontend import ClipNorm

log = logging.getLogger(__name__)
_HANDLES: weakref.WeakKeyDictionary[nn.Module, list[Any]] = weakref.WeakKeyDictionary()
_SAID: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()  # logged once per model
LOWPASS_WIDTH_HZ = 150.0  # roll-off width of the random low-pass (a soft edge, no ringing)
CPU = torch.device("cpu")  # random draws always come from a CPU generator (then move to the batch's device)


def _rand(shape: int | tuple[int, ...] | torch.Size, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform draws from the CPU generator, moved to `device`: the same stream on any device."""
    return torch.rand(shape, generator=gen).to(device)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device = CPU) -> torch.Tensor:
    return lo + (hi - lo) * _rand(n, gen, device)


def _chance(n: int, p: float, gen: torch.Generator, device: torch.device = CPU) -> torch.Tensor:
    return _rand(n, gen, device) < p


def check_augment(cfg: AugmentConfig) -> None:
    """Raise ConfigError naming the first out-of-range augmentation setting."""
    a, i, t = cfg.audio, cfg.image, cfg.text
    checks = [
        (1 <= a.crop_factor <= ENERGY_SEARCH_CLIPS, f"audio crop_factor in [1, {ENERGY_SEARCH_CLIPS}]"),
        (a.gain_db >= 0 and 0 <= a.shift < 1 and 0 <= a.speed < 0.5,
         "audio gain_db ≥ 0, shift in [0, 1), speed in [0, 0.5)"),
        (all(0 <= p <= 1 for p in (a.speed_prob, a.noise_prob, a.lowpass_prob)), "audio probabilities in [0, 1]"),
        (len(a.snr_db) == 2 and a.snr_db[0] <= a.snr_db[1], "audio snr_db = [low, high]"),
        (len(a.lowpass_hz) == 2 and 0 < a.lowpass_hz[0] <= a.lowpass_hz[1], "audio lowpass_hz = [low, high] > 0"),
        (a.time_masks >= 0 and a.freq_masks >= 0 and 0 <= a.time_mask < 1 and 0 <= a.freq_mask < 1,
         "audio masks ≥ 0 and mask widths in [0, 1)"),
        (min(i.shift, i.rotate, i.scale, i.brightness, i.contrast, i.noise) >= 0 and i.scale < 1,
         "image jitter amounts ≥ 0 and scale < 1"),
        (0 <= t.token_dropout < 1, "text token_dropout in [0, 1)"),
    ]  # fmt: skip
    for ok, what in checks:
        if not ok:
            raise ConfigError(f"train.augment: expected {what} (got {cfg})")


# ---------------------------------------------------------------- audio


def random_crop(wave: torch.Tensor, samples: int, gen: torch.Generator) -> torch.Tensor:
    """A random window of `samples` per row of a longer batch [B, L] (unchanged when L <= samples).

    Windows start within each row's recorded part (up to its last non-zero sample), so a short clip
    zero-padded to L keeps its start, exactly as evaluation places it.
    """
    n, length = wave.shape
    if length <= samples:
        return wave
    recorded = length - (wave != 0).flip(1).float().argmax(dim=1)  # last non-zero + 1 (L for all-zero rows)
    room = (recorded - samples).clamp(min=0)
    start = (_rand(n, gen, wave.device) * (room + 1)).long().clamp(max=room)
    idx = start.unsqueeze(1) + torch.arange(samples, device=wave.device).unsqueeze(0)
    return torch.gather(wave, 1, idx)


def speed_and_shift(wave: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """out(t) = wave(speed·(t − centre) + centre − shift), linear interpolation, zeros outside the clip."""
    n, length = wave.shape
    offset = 2.0 * shift / max(length - 1, 1)  # samples → normalized [-1, 1] coordinates
    x = torch.linspace(-1.0, 1.0, length, device=wave.device).unsqueeze(0) * speed.unsqueeze(1) - offset.unsqueeze(1)
    grid = torch.stack([x, torch.zeros_like(x)], dim=-1).unsqueeze(1)  # [B, 1, L, 2] (x, y=0)
    out = nn.functional.grid_sample(wave.view(n, 1, 1, length), grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=True)
    return out.view(n, length)


def lowpass(wave: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Soft FFT low-pass per row at `cutoff_hz` [B] (rows with cutoff ≥ Nyquist pass unchanged)."""
    length = wave.shape[1]
    freqs = torch.fft.rfftfreq(length, d=1.0 / sample_rate, device=wave.device)
    gain = torch.sigmoid((cutoff_hz.unsqueeze(1) - freqs.unsqueeze(0)) / LOWPASS_WIDTH_HZ)
    gain = torch.where(cutoff_hz.unsqueeze(1) >= sample_rate / 2, torch.ones_like(gain), gain)
    return torch.fft.irfft(torch.fft.rfft(wave, dim=1) * gain, n=length, dim=1)


def recorded_span(wave: torch.Tensor) -> torch.Tensor:
    """Mask [B, L] of the samples between each row's first and last non-zero sample."""
    nonzero = wave != 0
    length = wave.shape[1]
    first = nonzero.float().argmax(dim=1)
    last = length - 1 - nonzero.flip(1).float().argmax(dim=1)
    t = torch.arange(length, device=wave.device).unsqueeze(0)
    return (t >= first.unsqueeze(1)) & (t <= last.unsqueeze(1)) & nonzero.any(dim=1, keepdim=True)


def add_noise(wave: torch.Tensor, snr_db: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """White noise at `snr_db` [B] below each clip's own power (over its non-zero samples), on its recorded span."""
    nonzero = (wave != 0).float()
    power = (wave * wave * nonzero).sum(dim=1) / nonzero.sum(dim=1).clamp(min=1.0)
    std = torch.sqrt(power / 10.0 ** (snr_db / 10.0))
    noise = torch.randn(wave.shape, generator=gen).to(wave.device) * std.unsqueeze(1)
    return wave + noise * recorded_span(wave).float()


def augment_waveform(wave: torch.Tensor, samples: int, sample_rate: int, cfg: AudioAugmentConfig,
                     gen: torch.Generator) -> torch.Tensor:
    """Crop, gain, speed + shift, low-pass, noise: a training batch [B, L] → [B, samples]."""
    wave = random_crop(wave, samples, gen)
    (n, length), dev = wave.shape, wave.device
    wave = wave * 10.0 ** (_uniform(n, -cfg.gain_db, cfg.gain_db, gen, dev) / 20.0).unsqueeze(1)
    speed = torch.where(_chance(n, cfg.speed_prob, gen, dev), _uniform(n, 1 - cfg.speed, 1 + cfg.speed, gen, dev),
                        torch.ones(n, device=dev))
    wave = speed_and_shift(wave, speed, _uniform(n, -cfg.shift, cfg.shift, gen, dev) * length)
    hi = min(cfg.lowpass_hz[1], sample_rate / 2)
    cutoff = _uniform(n, min(cfg.lowpass_hz[0], hi), hi, gen, dev)
    wave = lowpass(wave, torch.where(_chance(n, cfg.lowpass_prob, gen, dev), cutoff,
                                     torch.full((n,), 1e9, device=dev)), sample_rate)
    noisy = add_noise(wave, _uniform(n, cfg.snr_db[0], cfg.snr_db[1], gen, dev), gen)
    return torch.where(_chance(n, cfg.noise_prob, gen, dev).unsqueeze(1), noisy, wave)


def _mask_axis(n: int, size: int, count: int, max_frac: float, gen: torch.Generator) -> torch.Tensor:
    """[B, size] bool: `count` random bands of width ≤ max_frac·size per row."""
    masked = torch.zeros(n, size, dtype=torch.bool)
    pos = torch.arange(size).unsqueeze(0)
    for _ in range(count):
        width = (torch.rand(n, generator=gen) * (max_frac * size + 1)).long()
        start = (torch.rand(n, generator=gen) * (size - width + 1).float()).long()
        masked |= (pos >= start.unsqueeze(1)) & (pos < (start + width).unsqueeze(1))
    return masked


def spec_augment(features: torch.Tensor, cfg: AudioAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment on a normalized log-mel [B, 1, M, T]: masked cells are set to 0 (the clip mean)."""
    n, _, mels, frames = features.shape
    freq = _mask_axis(n, mels, cfg.freq_masks, cfg.freq_mask, gen)
    time = _mask_axis(n, frames, cfg.time_masks, cfg.time_mask, gen)
    keep = ~(freq.unsqueeze(2) | time.unsqueeze(1))  # [B, M, T], drawn on the CPU
    return features * keep.unsqueeze(1).to(features.device, features.dtype)


# ---------------------------------------------------------------- image and text


def augment_image(x: torch.Tensor, cfg: ImageAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Flips (if enabled), affine jitter, brightness/contrast and noise on normalized pixels [B, C, H, W]."""
    n, dev = x.shape[0], x.device
    if cfg.hflip:
        x = torch.where(_chance(n, 0.5, gen, dev).view(n, 1, 1, 1), x.flip(3), x)
    if cfg.vflip:
        x = torch.where(_chance(n, 0.5, gen, dev).view(n, 1, 1, 1), x.flip(2), x)
    angle = _uniform(n, -cfg.rotate, cfg.rotate, gen, dev)
    zoom = _uniform(n, 1 - cfg.scale, 1 + cfg.scale, gen, dev)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    tx = _uniform(n, -2 * cfg.shift, 2 * cfg.shift, gen, dev)
    ty = _uniform(n, -2 * cfg.shift, 2 * cfg.shift, gen, dev)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
    x = x * _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen, dev).view(n, 1, 1, 1)
    x = x + _uniform(n, -cfg.brightness, cfg.brightness, gen, dev).view(n, 1, 1, 1)
    return x + torch.randn(x.shape, generator=gen).to(dev) * cfg.noise


def token_dropout(attention_mask: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Attention mask with each token after the first dropped with probability `rate`."""
    drop = _rand(attention_mask.shape, gen, attention_mask.device) < rate
    drop[:, 0] = False
    return attention_mask * (~drop).to(attention_mask.dtype)


# ---------------------------------------------------------------- attaching to a model


def _input_names(enc: nn.Module) -> list[str]:
    return [s.name for s in enc.input_specs()]  # type: ignore[operator]


def _pre_hook(fn: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> Callable[[nn.Module, tuple[Any, ...]], Any]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> Any:
        return fn(args) if module.training else None

    return hook


def _audio_hooks(enc: nn.Module, cfg: AudioAugmentConfig, rate: int, gen: torch.Generator) -> list[Any]:
    samples = int(getattr(enc, "samples", 0))
    handles = [enc.register_forward_pre_hook(_pre_hook(
        lambda args: (augment_waveform(args[0], samples or args[0].shape[1], rate, cfg, gen), *args[1:])))]
    if cfg.time_masks or cfg.freq_masks:
        for module in enc.modules():
            if isinstance(module, ClipNorm):
                handles.append(module.register_forward_hook(
                    lambda mod, _args, out: spec_augment(out, cfg, gen) if mod.training else None))
    return handles


def _image_hooks(enc: nn.Module, cfg: ImageAugmentConfig, gen: torch.Generator) -> list[Any]:
    return [enc.register_forward_pre_hook(_pre_hook(lambda args: (augment_image(args[0], cfg, gen), *args[1:])))]


def _text_hooks(enc: nn.Module, cfg: TextAugmentConfig, gen: torch.Generator) -> list[Any]:
    return [enc.register_forward_pre_hook(_pre_hook(
        lambda args: (args[0], token_dropout(args[1], cfg.token_dropout, gen), *args[2:])))]


def _encoder_hooks(model: Any, m: str, cfg: AugmentConfig, gen: torch.Generator) -> tuple[list[Any], str]:
    """Hooks for modality `m`'s encoder and a word on what they do (or why there are none)."""
    enc, names = model.encoder(m), _input_names(model.encoder(m))
    if m == "audio" and names[:1] == ["waveform"] and cfg.audio.enabled:
        rate = int(getattr(enc, "sample_rate", model.cfg.audio.sample_rate))
        return _audio_hooks(enc, cfg.audio, rate, gen), "waveform + SpecAugment"
    if m == "image" and names[:1] == ["pixel_values"] and cfg.image.enabled:
        flips = "+".join(f for f, on in (("hflip", cfg.image.hflip), ("vflip", cfg.image.vflip)) if on)
        return _image_hooks(enc, cfg.image, gen), f"affine/colour/noise{', ' + flips if flips else ', no flips'}"
    if m == "text" and names[1:2] == ["attention_mask"] and cfg.text.token_dropout > 0:
        return _text_hooks(enc, cfg.text, gen), f"token dropout {cfg.text.token_dropout:g}"
    off = not getattr(getattr(cfg, m), "enabled", True) or (m == "text" and cfg.text.token_dropout == 0)
    return [], "off" if off else f"none (no augmentation for inputs {names})"


def attach_augmentation(model: Any, cfg: AugmentConfig, seed: int) -> dict[str, str]:
    """Attach (or re-attach, replacing earlier hooks) training augmentation to every encoder; say what per modality."""
    check_augment(cfg)
    detach_augmentation(model)
    gen = torch.Generator().manual_seed(seed)
    handles: list[Any] = []
    summary: dict[str, str] = {}
    for m in model.modalities:
        hooks, what = _encoder_hooks(model, m, cfg, gen)
        handles += hooks
        summary[m] = what
    _HANDLES[model] = handles
    line = "; ".join(f"{m}: {w}" for m, w in summary.items())
    if _SAID.get(model) != line:  # re-attached every epoch (reseeded): say it once
        _SAID[model] = line
        log.info("training augmentation: %s", line)
    return summary


def detach_augmentation(model: nn.Module) -> int:
    """Remove the augmentation hooks attach_augmentation put on `model`; return how many."""
    handles = _HANDLES.pop(model, [])
    for h in handles:
        h.remove()
    return len(handles)


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """Measured SNR in dB of `noisy` against `clean` (helper for tests and docs)."""
    noise = float(((noisy - clean) ** 2).sum())
    return 10.0 * math.log10(float((clean**2).sum()) / max(noise, 1e-20))
