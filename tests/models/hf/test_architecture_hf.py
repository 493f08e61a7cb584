"""Runs and bundles outlive the user's `hf:` folder: the saved config files rebuild the encoders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hf_helpers import mix_manifests, run_cli

from mmedge.models.hf.architecture import architecture_from, saved_architectures, source_folder


@pytest.fixture(scope="module")
def orphan_bundle(hf_models: dict[str, Path], manifests: dict[str, Path],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text (BERT) + audio (Whisper) run whose folders are deleted after training, then exported."""
    root = tmp_path_factory.mktemp("hf_orphan")
    for name in ("bert", "whisper"):
        shutil.copytree(hf_models[name], root / name)
    data = mix_manifests(manifests, ("text", "audio"), root / "data.jsonl")
    run_cli("train", "--data", data, "--out", root / "run", "--modalities", "text,audio", "--text-encoder",
            f"hf:{root / 'bert'}", "--audio-encoder", f"hf:{root / 'whisper'}", "--epochs", "1", "--json")
    for name in ("bert", "whisper"):
        shutil.rmtree(root / name)
    run_cli("export", root / "run", "--out", root / "bundle", "--samples", "8")
    return root


def test_run_keeps_config_files_not_weights(orphan_bundle: Path) -> None:
    """RUN/hf/<modality>/ holds config, tokenizer / preprocessor files, and no weights; the bundle hashes them."""
    files = saved_architectures(orphan_bundle / "run")
    assert files == ["hf/audio/config.json", "hf/audio/preprocessor_config.json", "hf/text/config.json",
                     "hf/text/tokenizer.json"]
    assert not list((orphan_bundle / "run" / "hf").rglob("*.safetensors"))
    meta = json.loads((orphan_bundle / "bundle" / "bundle.json").read_text())
    assert {f"torch/{f}" for f in files} <= set(meta["files"])
    for component in ("text", "audio"):
        assert meta["components"][component]["artifacts"]["fp32"]["parity"]["max_abs_diff"] <= 1e-4


def test_torch_reference_runs_without_the_folders(orphan_bundle: Path) -> None:
    """`mmedge eval --backend torch` (rebuilt from torch/hf/) agrees with ONNX Runtime fp32 on every row."""
    data = orphan_bundle / "data.jsonl"
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        out = run_cli("eval", orphan_bundle / "bundle", "--data", data, "--split", "test", "--backend", backend,
                      "--json")
        rows, _ = json.JSONDecoder().raw_decode(out[out.index("["):])
        outputs[backend] = rows[0]
    assert np.array_equal(np.array(outputs["torch"]["confusion"]), np.array(outputs["onnxruntime"]["confusion"]))
    assert outputs["torch"]["subsets"]["all"]["n"] == 48


def test_source_folder_outside_a_run(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """Outside architecture_from (training) the user's folder loads with weights; inside, the saved files."""
    folder, weights = source_folder(f"hf:{hf_models['vit']}", "image")
    assert folder.path == hf_models["vit"].resolve() and weights
    with architecture_from(tmp_path):  # nothing saved there: still the user's folder
        assert source_folder(f"hf:{hf_models['vit']}", "image")[1]
    (tmp_path / "hf" / "image").mkdir(parents=True)
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(hf_models["vit"] / name, tmp_path / "hf" / "image" / name)
    with architecture_from(tmp_path):
        folder, weights = source_folder("hf:/gone", "image")
    assert folder.path == (tmp_path / "hf" / "image").resolve() and not weights
