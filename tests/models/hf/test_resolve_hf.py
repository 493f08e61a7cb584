"""Preprocessing taken from `hf:` folders: what is set, what is logged, what is refused."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from mmedge.config import ModelConfig
from mmedge.errors import InputError
from mmedge.models.hf.resolve import image_size, resolve_hf_config, with_hf_specs
from mmedge.specs import AudioSpec, Preprocessing


def config(modality: str, folder: Path) -> ModelConfig:
    """A one-modality ModelConfig whose encoder is hf:folder."""
    cfg = ModelConfig(modalities=[modality])
    getattr(cfg, modality).encoder = f"hf:{folder}"
    return cfg


def test_convnext_processor_sets_the_image_spec(hf_models: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    """ConvNeXt: shortest_edge 32, bicubic, the saved mean/std, 3 channels; the unreproduced crop_pct is warned."""
    cfg = config("image", hf_models["convnext"])
    with caplog.at_level(logging.INFO, logger="mmedge.models.hf.resolve"):
        folders = resolve_hf_config(cfg)
    img = cfg.image
    assert (img.size, img.channels, img.resize) == (32, 3, "bicubic")
    saved = json.loads((hf_models["convnext"] / "preprocessor_config.json").read_text())
    assert img.mean == pytest.approx(saved["image_mean"]) and img.std == pytest.approx(saved["image_std"])
    assert cfg.image.encoder == f"hf:{hf_models['convnext'].resolve()}" and folders["image"].family == "convnext"
    assert any("crop_pct 0.875 is not reproduced" in r.message and r.levelname == "WARNING" for r in caplog.records)


def test_relative_path_becomes_absolute(hf_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """hf:./folder is stored absolute, so export/eval work from any directory."""
    monkeypatch.chdir(hf_models["vit"].parent)
    cfg = config("image", Path("vit"))
    resolve_hf_config(cfg)
    assert cfg.image.encoder == f"hf:{hf_models['vit'].resolve()}"


def test_text_length_over_positions(hf_models: dict[str, Path]) -> None:
    """text.max_length over the model's max_position_embeddings (64) is refused."""
    cfg = config("text", hf_models["bert"])
    cfg.text.max_length = 65
    with pytest.raises(InputError, match="over the 64 positions"):
        resolve_hf_config(cfg)


def test_audio_rate_from_the_feature_extractor(hf_models: dict[str, Path]) -> None:
    """The sample rate comes from preprocessor_config.json (the tiny preset's 8 kHz becomes 16 kHz)."""
    cfg = config("audio", hf_models["wav2vec2"])
    assert cfg.audio.sample_rate == 8000
    resolve_hf_config(cfg)
    assert cfg.audio.sample_rate == 16000


def test_processor_without_normalization_and_bad_rescale(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """do_normalize false → mean 0 / std 1; a rescale factor other than 1/255 is refused."""
    folder = tmp_path / "vit"
    shutil.copytree(hf_models["vit"], folder)
    path = folder / "preprocessor_config.json"
    pre = json.loads(path.read_text())
    path.write_text(json.dumps({**pre, "do_normalize": False}))
    cfg = config("image", folder)
    resolve_hf_config(cfg)
    assert cfg.image.mean == [0.0] * 3 and cfg.image.std == [1.0] * 3
    path.write_text(json.dumps({**pre, "rescale_factor": 1.0}))
    with pytest.raises(InputError, match=r"rescale_factor 1\.0"):
        resolve_hf_config(config("image", folder))


def test_image_size_forms() -> None:
    """int, shortest_edge, square height/width, crop_size when center-cropping; non-square refused."""
    assert image_size({"size": 64}, "p") == 64
    assert image_size({"size": {"shortest_edge": 224}}, "p") == 224
    assert image_size({"size": {"height": 96, "width": 96}}, "p") == 96
    assert image_size({"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": 224}, "p") == 224
    with pytest.raises(InputError, match="not square"):
        image_size({"size": {"height": 96, "width": 128}}, "p")


def test_spec_records_the_encoder(hf_models: dict[str, Path]) -> None:
    """with_hf_specs adds path/family/model_type/in_graph to the modality's spec, and it round-trips JSON."""
    folders = resolve_hf_config(config("audio", hf_models["whisper"]))
    spec = with_hf_specs(Preprocessing(audio=AudioSpec(16000, 1.0)), folders)
    assert spec.audio is not None and spec.audio.hf is not None
    assert spec.audio.hf["model_type"] == "whisper" and "80 mel filters" in spec.audio.hf["in_graph"]
    assert Preprocessing.from_json(spec.to_json()) == spec
