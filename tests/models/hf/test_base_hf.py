"""Loading `hf:` folders: missing weights are named once, the library's own report is held back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from torch import nn

from mmedge.models.hf.base import grouped, layer_list, load_hf_model
from mmedge.models.hf.folder import hf_folder


def test_missing_weights_warned_once(hf_models: dict[str, Path], tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint lacking a layer's weights: one mmedge warning naming the count; no LOAD REPORT printed."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "vit"
    shutil.copytree(hf_models["vit"], folder)
    state = load_file(str(folder / "model.safetensors"))
    kept = {k: v for k, v in state.items() if not k.startswith("layernorm.")}  # drop the final LayerNorm
    save_file(kept, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="mmedge.models.hf.base"):
        model = load_hf_model(hf_folder(f"hf:{folder}", "image"))
    warned = [r.message for r in caplog.records if "randomly initialised" in r.message]
    assert len(warned) == 1 and "2 weight(s)" in warned[0] and "layernorm.bias" in warned[0]
    assert "LOAD REPORT" not in capsys.readouterr().err
    assert model.pooler is None  # dropped: mmedge pools itself


def test_layer_list_and_grouped() -> None:
    """layer_list takes the first existing path; grouped joins weighted tail modules to the last block."""
    net = nn.Module()
    net.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    norm = nn.LayerNorm(2)
    blocks = layer_list(net, "encoder.layer", "layers")
    assert blocks == list(net.layers)
    out = grouped(blocks, [norm, nn.Identity()])
    assert out[0] is blocks[0] and isinstance(out[1], nn.ModuleList) and list(out[1]) == [blocks[1], norm]
    with pytest.raises(Exception, match="no layer list"):
        layer_list(net, "encoder.layer")
    assert json.dumps([type(b).__name__ for b in grouped(blocks, [nn.Identity()])]) == '["Linear", "Linear"]'
