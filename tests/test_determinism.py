"""Same seed → same metrics; checkpoints load with safetensors (no pickle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from mmedge.config import RunConfig, load_config
from mmedge.errors import ConfigError
from mmedge.models.presets import preset_config
from mmedge.train.run import train_run


def quick_config(seed: int) -> RunConfig:
    cfg = preset_config("tiny")
    cfg.limit, cfg.train.epochs, cfg.train.seed = 96, 2, seed
    cfg.model.modalities = ["text", "audio"]
    return cfg


def test_same_seed_same_metrics(tmp_path: Path):
    a = train_run(quick_config(3), tmp_path / "a").metrics
    b = train_run(quick_config(3), tmp_path / "b").metrics
    assert a["test"] == b["test"] and a["history"] == b["history"]
    state = load_file(str(tmp_path / "a" / "model.safetensors"))
    assert any(k.startswith("head.") for k in state)


def test_config_file_round_trip(tmp_path: Path):
    path = tmp_path / "cfg.yaml"
    path.write_text("data: digits\nmodel:\n  fusion: gated\n  modalities: [audio, text]\ntrain:\n  epochs: 3\n")
    cfg = load_config(path)
    assert cfg.model.fusion == "gated" and cfg.model.modalities == ["text", "audio"] and cfg.train.epochs == 3


@pytest.mark.parametrize(("text", "message"), [
    ("model:\n  fusoin: gated\n", "unknown key"),
    ("model:\n  modalities: [smell]\n", "non-empty subset"),
    ("train:\n  modality_dropout: 1.5\n", "modality_dropout"),
    ("model: [1, 2\n", "cannot parse"),
])
def test_bad_config(tmp_path: Path, text: str, message: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
