"""Serve fixtures: raw request bytes (a PNG and a WAV file) and free ports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ports() -> list[int]:
    """Three free ports (HTTP, gRPC, metrics)."""
    from mmedge.serve.loadtest import free_ports

    return free_ports(3)


@pytest.fixture(scope="session")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A colour PNG (resized and greyed by preprocessing) and a 3 s stereo 16 kHz WAV (mixed, cut, resampled)."""
    import soundfile as sf
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "digit.png")
    t = np.arange(48000) / 16000  # 3 s: longer than the tiny bundle's 1 s clip, loud only after 1.5 s
    loud = np.where(t > 1.5, 1.0, 0.05)
    wave = np.stack([0.3 * loud * np.sin(2 * np.pi * 440 * t), 0.2 * loud * np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(root / "digit.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
    (root / "bad.png").write_bytes(b"\x89PNG not really")
    return {"image": root / "digit.png", "audio": root / "digit.wav", "bad": root / "bad.png"}
