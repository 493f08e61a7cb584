"""Lazy "module:attr" registries: fusion ops, encoders, presets and CLI commands share one style."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmedge.errors import ConfigError
from mmedge.registry import Registry


def test_lazy_resolution_and_errors() -> None:
    """Targets resolve on first get; unknown names list the choices; bad targets are refused."""
    reg: Registry[object] = Registry("thing", {"join": "os.path:join"})
    assert "join" in reg and reg.names() == ["join"] and list(reg) == ["join"]
    import os.path

    assert reg.get("join") is os.path.join
    reg.register("obj", 42)
    assert reg.get("obj") == 42
    with pytest.raises(ConfigError, match="unknown thing 'nope' \\(choose from: join, obj\\)"):
        reg.get("nope")
    with pytest.raises(ConfigError, match=r"package\.module:attribute"):
        reg.register("bad", "no_colon")
    reg.unregister("obj")
    assert "obj" not in reg


def test_tables_are_registries() -> None:
    """Every table of the package is a Registry with the expected entries."""
    from mmedge.cli.main import COMMAND_MODULES
    from mmedge.models.encoders import ENCODERS
    from mmedge.models.fusion import FUSION_OPS
    from mmedge.models.presets import PRESETS

    for table in (COMMAND_MODULES, ENCODERS, FUSION_OPS, PRESETS):
        assert isinstance(table, Registry)
    assert set(FUSION_OPS) == {"concat", "sum", "mean", "product", "gated", "attention"}
    assert set(PRESETS) == {"tiny", "edge"}
    assert {"text/bag", "image/cnn", "audio/cnn", "text/minilm", "image/efficientnet_lite0",
            "audio/mobile_cnn"} <= set(ENCODERS)
    assert {"train", "export", "quantize", "bench", "demo", "inspect"} <= set(COMMAND_MODULES)


def test_nothing_registers_on_import() -> None:
    """Listing encoders imports no pretrained-model code; building one does."""
    code = ("import sys; from mmedge.models.encoders import ENCODERS, encoder_names; "
            "names = encoder_names('image'); "
            "assert 'efficientnet_lite0' in names, names; "
            "assert 'mmedge.models.pretrained' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_encoder_unknown_and_registered() -> None:
    """An unknown encoder names the known ones of its modality; a registered builder is used."""
    from mmedge.config import ModelConfig
    from mmedge.models.encoders import ENCODERS, build_encoder, register_encoder

    cfg = ModelConfig()
    cfg.image.encoder = "nope"
    with pytest.raises(ConfigError, match="unknown image encoder 'nope' \\(known: cnn, efficientnet_lite0"):
        build_encoder("image", cfg)
    register_encoder("image", "nope", "mmedge.models.encoders:build_image_cnn")
    try:
        assert type(build_encoder("image", cfg)).__name__ == "ImageCNNEncoder"
    finally:
        ENCODERS.unregister("image/nope")


def test_unknown_preset_and_fusion() -> None:
    """Presets and fusion ops keep their error messages."""
    from mmedge.models.fusion import build_fusion
    from mmedge.models.presets import preset_config

    with pytest.raises(ConfigError, match="unknown preset 'x' \\(choose from: edge, tiny\\)"):
        preset_config("x")
    with pytest.raises(ConfigError, match="unknown fusion 'x'"):
        build_fusion("x", 2, 4)
    assert preset_config("tiny").name == "tiny"
