"""Config layering: preset → config file (only what it names) → flags, with the layers recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmedge.errors import ConfigError
from mmedge.models.presets import preset_config
from mmedge.train.layering import nest, resolve_config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_preset_edge_with_a_partial_config_keeps_edge(tmp_path: Path):
    cfg_file = write(tmp_path / "my.yaml", "model:\n  audio:\n    clip_seconds: 2.5\ntrain:\n  patience: 4\n")
    resolved = resolve_config("edge", cfg_file)
    cfg, edge = resolved.config, preset_config("edge")
    assert cfg.model.preset == "edge" and cfg.model.text.encoder == edge.model.text.encoder == "minilm"
    assert cfg.model.image.encoder == "efficientnet_lite0" and cfg.model.audio.sample_rate == 16000
    assert cfg.model.audio.clip_seconds == 2.5 and cfg.train.patience == 4
    assert cfg.train.mode == edge.train.mode and cfg.train.epochs == edge.train.epochs  # untouched by the file
    assert resolved.describe() == ["preset edge", f"config {cfg_file}: model.audio.clip_seconds, train.patience"]


def test_flags_override_the_file_and_the_preset(tmp_path: Path):
    cfg_file = write(tmp_path / "my.yaml", "train:\n  epochs: 7\n  monitor: val_accuracy\n")
    resolved = resolve_config(None, cfg_file, {"train.epochs": 3, "train.seed": None, "model.modalities": ["text"]})
    cfg = resolved.config
    assert cfg.model.preset == "tiny" and cfg.train.epochs == 3 and cfg.train.monitor == "val_accuracy"
    assert cfg.model.modalities == ["text"] and cfg.train.seed == 0
    assert resolved.describe()[-1] == "flags: train.epochs, model.modalities"


def test_the_file_can_name_its_preset(tmp_path: Path):
    cfg_file = write(tmp_path / "my.yaml", "model:\n  preset: edge\n")
    assert resolve_config(None, cfg_file).config.model.text.encoder == "minilm"
    with pytest.raises(ConfigError, match=r"--preset tiny conflicts with model\.preset: edge"):
        resolve_config("tiny", cfg_file)


@pytest.mark.parametrize(("text", "message"), [
    ("train:\n  epohcs: 3\n", "unknown key"),
    ("train:\n  monitor: val_f1\n", "train.monitor must be one of val_loss"),
    ("train:\n  min_delta: -1\n", "min_delta"),
    ("- 1\n- 2\n", "expected a mapping"),
])  # fmt: skip
def test_bad_files_name_themselves(tmp_path: Path, text: str, message: str):
    cfg_file = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match=message):
        resolve_config("tiny", cfg_file)


def test_a_stored_config_round_trips(tmp_path: Path):
    from mmedge.train.checkpoint import write_config

    resolved = resolve_config("edge", None, {"train.patience": 3, "name": "x"})
    stored = write_config(tmp_path, resolved.config, resolved.describe())
    assert stored.read_text().startswith("# resolved mmedge training config\n# preset edge\n# flags: ")
    assert resolve_config(None, stored).config == resolved.config


def test_nest():
    assert nest({"a.b.c": 1, "a.d": 2, "e": None, "f": 0}) == {"a": {"b": {"c": 1}, "d": 2}, "f": 0}
