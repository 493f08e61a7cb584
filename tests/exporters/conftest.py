"""Fixtures of the quantization tests: the tiny bundle with fp16, int8 and int8-trt artifacts, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CALIB_SAMPLES = 32
PARITY_SAMPLES = 16


@pytest.fixture(scope="session")
def quantized_bundle_pristine(tiny_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle (4 epochs, 240 samples per split) with every precision added (read-only use)."""
    from mmedge.exporters.quantize_run import QuantizeOptions, quantize_bundle

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
