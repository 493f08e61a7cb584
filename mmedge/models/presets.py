"""Named starting configurations: `tiny` (from scratch, seconds; tests) and `edge` (pretrained)."""

from __future__ import annotations

from collections.abc import Callable

from mmedge.config import AudioConfig, ImageConfig, ModelConfig, RunConfig, TextConfig, TrainConfig
from mmedge.errors import ConfigError
from mmedge.registry import Registry


def tiny() -> RunConfig:
    """Small encoders trained from scratch: token-embedding mean, small CNNs."""
    # One thread: these small kernels lose far more to thread synchronisation than they gain
    # (measured here: 2 epochs took 8 s with 1 thread, 77 s with 2 on 2 cores).
    return RunConfig(name="tiny", model=ModelConfig(preset="tiny"), train=TrainConfig(threads=1))


def edge() -> RunConfig:
    """MiniLM-L6 text, EfficientNet-Lite0 image (ImageNet weights), mobile CNN audio over the log-mel.

    Image: 96×96 RGB (grayscale scans are replicated), EfficientNet-Lite's mean/std (x·255 − 127) / 128.
    Audio: 16 kHz (8 kHz sources are resampled), 25 ms window, 10 ms hop, 40 mel bands; the audio
    CNN has no pretrained weights and trains in every mode.
    """
    model = ModelConfig(
        preset="edge",
        embed_dim=128,
        text=TextConfig(encoder="minilm", max_length=16),
        image=ImageConfig(encoder="efficientnet_lite0", size=96, channels=3, mean=[0.498, 0.498, 0.498],
                          std=[0.502, 0.502, 0.502]),
        audio=AudioConfig(encoder="mobile_cnn", sample_rate=16000, n_fft=400, hop=160, n_mels=40),
    )
    return RunConfig(name="edge", model=model,
                     train=TrainConfig(mode="frozen", epochs=40, lr=2e-3, encoder_lr_mult=0.05, threads=1))


PRESETS: Registry[Callable[[], RunConfig]] = Registry(
    "preset", {"tiny": "mmedge.models.presets:tiny", "edge": "mmedge.models.presets:edge"})


def preset_config(name: str) -> RunConfig:
    """The RunConfig of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS.names())})")
    return PRESETS.get(name)()
