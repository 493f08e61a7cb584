"""The in-graph log-mel + per-clip normalization: level and padding invariance, and the same in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmedge.config import AudioConfig, ModelConfig
from mmedge.data.digits import _audio_asset
from mmedge.exporters.onnx_export import export_module
from mmedge.models.audio_frontend import ClipNorm, LogMel
from mmedge.models.encoders import AudioCNNEncoder, build_encoder
from mmedge.specs import TensorSpec

RATE, N_FFT, HOP, MELS = 8000, 256, 128, 32


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    """Six spoken digits: their spoken part at the start of a 1 s buffer, digital zeros after it."""
    waves = np.asarray(_audio_asset()["wave"][:6], dtype=np.float32).copy()
    waves[:, 5120:] = 0.0  # 40 hops of speech, zero padding after
    return torch.from_numpy(waves)


def normalized(wave: torch.Tensor) -> torch.Tensor:
    return ClipNorm()(LogMel(RATE, N_FFT, HOP, MELS)(wave))


def test_a_quiet_microphone_looks_like_a_loud_one(speech: torch.Tensor):
    loud = normalized(speech)
    for gain in (0.5, 0.03, 0.003):  # down to -50 dB (the absolute 1e-10 floor starts to show there)
        np.testing.assert_allclose(normalized(speech * gain).numpy(), loud.numpy(), atol=2e-2)
    raw = LogMel(RATE, N_FFT, HOP, MELS)(speech)
    assert float((LogMel(RATE, N_FFT, HOP, MELS)(speech * 0.03) - raw).abs().mean()) > 5  # the log-mel alone moves


def test_zero_padding_does_not_move_the_normalized_speech(speech: torch.Tensor):
    """Twice the padding: the speech frames normalize to the same values (stats over signal frames only)."""
    short = speech.clone()
    short[:, 2560:] = 0.0  # 20 hops of speech, 40 more of padding than `speech`
    longer = torch.cat([short, torch.zeros(6, 8000)], dim=1)
    a, b = normalized(short), normalized(longer)
    frames = a.shape[-1]
    np.testing.assert_allclose(b[..., :frames].numpy(), a.numpy(), atol=1e-4)
    pad = b[..., 30:]
    assert torch.all(pad == pad.amin(dim=(1, 2, 3), keepdim=True))  # padding = the clip's lowest value
    lowest = b.amin(dim=(1, 2, 3), keepdim=True)
    signal = (b != lowest).any(dim=2, keepdim=True).expand_as(b)  # frames not mapped to "silence"
    for row, mask in zip(b, signal, strict=True):
        cells = row[mask]
        assert abs(float(cells.mean())) < 1e-4 and abs(float(cells.std(unbiased=False)) - 1) < 1e-2


def test_silence_gives_zeros_not_nan():
    out = normalized(torch.zeros(2, 8000))
    assert torch.all(out == 0)


def test_audio_encoders_normalize_per_clip_not_per_dataset():
    for model_cfg in (ModelConfig(), ModelConfig(audio=AudioConfig(encoder="mobile_cnn"))):
        enc = build_encoder("audio", model_cfg)
        assert isinstance(enc.norm, ClipNorm)  # type: ignore[union-attr]
        assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.num_features == 1 for m in enc.modules())


def test_exported_encoder_normalizes_like_torch(speech: torch.Tensor, tmp_path: Path):
    """ONNX Runtime on quiet, padded and all-zero clips gives what torch gives (the norm is in the graph)."""
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    enc = AudioCNNEncoder(RATE, 1.0, N_FFT, HOP, MELS, 16).eval()
    path = export_module(enc, enc.input_specs(), [TensorSpec("embedding", "float32", ("batch", 16))],
                         (speech[:2],), tmp_path / "audio.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"ReduceMin", "ReduceMax", "Sign", "Log"} <= ops  # the per-clip norm is in the graph
    feed = torch.cat([speech * 0.03, speech[:1] * 0, speech[:1]])
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"waveform": feed.numpy()})[0]
    with torch.no_grad():
        want = enc(feed).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
