"""Shared fixtures: one tiny model trained on a slice of the built-in dataset, and its bundle."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from standin_cuda import StandinCuda


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Caches (embeddings, ONNX Runtime graphs) go to a session folder, never the user's ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("mmedge-cache")
    old = os.environ.get("MMEDGE_CACHE_DIR")
    os.environ["MMEDGE_CACHE_DIR"] = str(folder)  # subprocesses (the CLI, torchrun) inherit it
    yield folder
    if old is None:
        os.environ.pop("MMEDGE_CACHE_DIR", None)
    else:
        os.environ["MMEDGE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tri-modal run (400 samples per split, 30 epochs): real training, ~20 s, well above chance."""
    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    cfg = preset_config("tiny")
    cfg.limit, cfg.train.epochs, cfg.train.patience = 400, 30, 30
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_run(cfg, out)
    return out


@pytest.fixture(scope="session")
def tiny_bundle_pristine(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run exported to ONNX (read-only use: copy before altering)."""
    from mmedge.exporters.export_run import export_run

    out = tmp_path_factory.mktemp("export") / "tiny"
    export_run(tiny_run, out, samples=32)
    return out


@pytest.fixture()
def tiny_bundle(tiny_bundle_pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny bundle that a test may alter."""
    dest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_pristine, dest)
    return dest

CALIB_SAMPLES = 32
PARITY_SAMPLES = 16


@pytest.fixture(scope="session")
def quantized_bundle_pristine(tiny_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle (the learned tiny model) with every precision added (read-only use)."""
    from mmedge.quantize.run import QuantizeOptions, quantize_bundle

    out = tmp_path_factory.mktemp("quantized") / "tiny"
    shutil.copytree(tiny_bundle_pristine, out)
    for precision, target in (("fp16", "cpu"), ("int8", "cpu"), ("int8", "tensorrt")):
        quantize_bundle(out, QuantizeOptions(precision, target, samples=CALIB_SAMPLES,
                                             parity_samples=PARITY_SAMPLES, threads=1))
    return out


@pytest.fixture()
def quantized_bundle(quantized_bundle_pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the quantized bundle that a test may alter."""
    dest = tmp_path / "qbundle"
    shutil.copytree(quantized_bundle_pristine, dest)
    return dest


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinCuda]:
    """TensorRT and a CUDA device for this test: the stand-ins, wired the way the real ones would be."""
    import standin_trt
    from standin_cuda import StandinCuda

    from mmedge.runtime.cuda import select

    cuda = StandinCuda()
    monkeypatch.setitem(sys.modules, "tensorrt", standin_trt)
    monkeypatch.delitem(sys.modules, "mmedge.runtime.backends.tensorrt.trt_logger", raising=False)
    monkeypatch.setattr(standin_trt, "CUDA", cuda)
    monkeypatch.setattr(select, "_active", cuda)
    monkeypatch.setattr(select, "_active_device", 0)
    monkeypatch.setattr("mmedge.runtime.backends.tensorrt.env.read_l4t_release", lambda *a, **k: None)
    monkeypatch.setattr("mmedge.runtime.backends.tensorrt.env.read_board_model", lambda *a, **k: None)
    yield cuda
