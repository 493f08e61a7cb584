"""Every fine-tuning mode on every `hf:` family: frozen keeps the backbones, lp-ft probes then tunes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hf_helpers import mix_manifests, pretrained_state, run_cli

# (modalities, {modality: family}) — all five families across two multimodal runs
RUNS = {"bert+vit+whisper": {"text": "bert", "image": "vit", "audio": "whisper"},
        "convnext+wav2vec2": {"image": "convnext", "audio": "wav2vec2"}}


def train_mode(root: Path, families: dict[str, str], hf_models: dict[str, Path], manifests: dict[str, Path],
               mode: str) -> Path:
    """`mmedge train --mode MODE` of a model with one hf: encoder per modality (1 epoch per phase)."""
    mods = tuple(m for m in ("text", "image", "audio") if m in families)
    data = mix_manifests(manifests, mods, root / "data.jsonl")
    flags = [x for m in mods for x in (f"--{m}-encoder", f"hf:{hf_models[families[m]]}")]
    run_cli("train", "--data", data, "--out", root / "run", "--modalities", ",".join(mods), "--mode", mode,
            "--epochs", "1", "--lp-epochs", "1", "--json", *flags)
    return root / "run"


@pytest.mark.parametrize("combo", list(RUNS))
def test_frozen_keeps_every_backbone(combo: str, hf_models: dict[str, Path], manifests: dict[str, Path],
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--mode frozen: each backbone equals its folder's weights, each projection trained."""
    from safetensors.torch import load_file

    monkeypatch.setenv("MMEDGE_CACHE_DIR", str(tmp_path / "cache"))  # frozen features are cached here
    run = train_mode(tmp_path, RUNS[combo], hf_models, manifests, "frozen")
    state = load_file(str(run / "model.safetensors"))
    for modality, family in RUNS[combo].items():
        original = pretrained_state(hf_models[family])
        prefix = f"encoders.{modality}.backbone."
        backbone = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        compared = 0
        for key, value in backbone.items():
            inner = key.split(".", 1)[1]  # drop the wrapper's attribute (model / encoder / norm …)
            source = original.get(inner, original.get(f"encoder.{inner}"))
            if source is not None:
                assert torch.equal(value, source), (modality, key)
                compared += 1
        assert compared >= len(backbone) // 2, (modality, compared, len(backbone))  # the mapping found them
    assert (tmp_path / "cache").is_dir()


@pytest.mark.parametrize("combo", list(RUNS))
def test_lp_ft_runs_both_phases_and_moves_the_backbones(combo: str, hf_models: dict[str, Path],
                                                         manifests: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--mode lp-ft: a linear-probe phase then a fine-tune phase that moves every backbone (last epoch's weights).

    The final model.safetensors may be the probe's epoch (the best val loss wins), so the last checkpoint is read.
    """
    monkeypatch.setenv("MMEDGE_CACHE_DIR", str(tmp_path / "cache"))
    run = train_mode(tmp_path, RUNS[combo], hf_models, manifests, "lp-ft")
    metrics = json.loads((run / "metrics.json").read_text())
    assert [p["phase"] if isinstance(p, dict) else p for p in metrics["phases"]][:2] == ["linear-probe", "fine-tune"]
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    for modality, family in RUNS[combo].items():
        original = pretrained_state(hf_models[family])
        prefix = f"encoders.{modality}.backbone."
        moved = [k for k, v in state.items() if k.startswith(prefix) and v.is_floating_point()
                 and (src := original.get(k[len(prefix):].split(".", 1)[1],
                                          original.get("encoder." + k[len(prefix):].split(".", 1)[1]))) is not None
                 and not torch.equal(v, src)]
        assert moved, modality
