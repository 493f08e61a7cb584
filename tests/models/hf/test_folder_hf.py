"""Bad `hf:` encoders through the real CLI: one `error:` line naming the supported families, exit 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke

from mmedge.errors import InputError, MissingDependencyError
from mmedge.models.hf.folder import hf_folder, supported


def train_with(out: Path, encoder: str, modality: str = "audio") -> object:
    """`mmedge train --out OUT/run` with `--{modality}-encoder encoder` on the built-in data (fails early)."""
    return invoke("train", "--out", out / "run", "--modalities", modality, f"--{modality}-encoder", encoder,
                  "--epochs", "1", "--limit", "8")


def test_missing_folder(tmp_path: Path) -> None:
    """A folder that does not exist."""
    result = train_with(tmp_path, f"hf:{tmp_path / 'nope'}")
    assert_one_line_error(result, f"folder not found: {tmp_path / 'nope'}")
    assert result.exit_code == 2  # type: ignore[attr-defined]


def test_folder_without_config(tmp_path: Path) -> None:
    """A folder with no config.json."""
    assert_one_line_error(train_with(tmp_path, f"hf:{tmp_path}", "image"), "no config.json")


def test_unsupported_architecture_names_the_families(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """A BERT folder given as the audio encoder, and an unknown model_type: both name the supported families."""
    result = train_with(tmp_path, f"hf:{hf_models['bert']}", "audio")
    assert_one_line_error(result, "model_type 'bert' is not a supported audio encoder family; supported: "
                                  "wav2vec2 (wav2vec2, hubert, wavlm, data2vec-audio); whisper (whisper)")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    result = train_with(tmp_path, f"hf:{tmp_path}", "text")
    assert_one_line_error(result, f"supported: {supported('text')}")


def test_missing_tokenizer_or_processor(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """The preprocessing comes from the folder: no tokenizer.json / preprocessor_config.json is an error."""
    for name, modality, needed in (("bert", "text", "tokenizer.json"), ("vit", "image", "preprocessor_config.json")):
        folder = tmp_path / name
        shutil.copytree(hf_models[name], folder)
        (folder / needed).unlink()
        assert_one_line_error(train_with(tmp_path, f"hf:{folder}", modality), f"needs {needed}")


def test_empty_path_and_plain_names(tmp_path: Path) -> None:
    """'hf:' alone and an unknown registry name both say what is accepted."""
    assert_one_line_error(train_with(tmp_path, "hf:", "image"), "needs a folder (hf:PATH)")
    assert_one_line_error(train_with(tmp_path, "resnet", "image"), "or hf:PATH")


def test_folder_without_weights(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """config + processor but no weights: one InputError from loading, not a transformers traceback."""
    from mmedge.config import ModelConfig
    from mmedge.models.encoders import build_encoder

    folder = tmp_path / "vit"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(hf_models["vit"] / name, folder / name)
    cfg = ModelConfig(modalities=["image"])
    cfg.image.encoder = f"hf:{folder}"
    with pytest.raises(InputError, match="cannot load vit model from"):
        build_encoder("image", cfg)


def test_missing_transformers_names_the_extra(hf_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without transformers: MissingDependencyError naming pip install 'mmedge[train]'."""
    from mmedge.models.hf.base import load_hf_model

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers → ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmedge\[train\]'"):
        load_hf_model(hf_folder(f"hf:{hf_models['vit']}", "image"))
