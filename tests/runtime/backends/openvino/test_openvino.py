"""The openvino backend: parity with ONNX Runtime fp32 on the tiny bundle, verified bytes, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mmedge.bundle import Bundle
from mmedge.data.digits import load_digits
from mmedge.errors import BackendError, BundleError, MissingDependencyError
from mmedge.runtime.backends import make_runner
from mmedge.runtime.options import RunnerOptions
from mmedge.runtime.pipeline import Pipeline

pytest.importorskip("openvino")


def _samples(n: int = 24) -> list:
    return load_digits("test", limit=n).samples


def test_openvino_matches_onnxruntime_fp32(tiny_bundle_pristine: Path):
    samples = _samples()
    with Pipeline.from_bundle(tiny_bundle_pristine, "onnxruntime", "fp32", threads=1) as ort_pipe, \
            Pipeline.from_bundle(tiny_bundle_pristine, "openvino", "fp32", threads=1) as ov_pipe:
        ref = ort_pipe.predict_batch(samples).logits
        got = ov_pipe.predict_batch(samples).logits
        one = ov_pipe.predict(text="seven")
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert one.label in Bundle.load(tiny_bundle_pristine).labels


def test_openvino_runs_each_precision(quantized_bundle_pristine: Path):
    samples = _samples(8)
    with Pipeline.from_bundle(quantized_bundle_pristine, "onnxruntime", "fp32", threads=1) as ref_pipe:
        ref = ref_pipe.predict_batch(samples).logits
    for precision in ("fp16", "int8"):
        with Pipeline.from_bundle(quantized_bundle_pristine, "openvino", precision, threads=1) as pipe:
            got = pipe.predict_batch(samples).logits
        assert got.shape == ref.shape and np.isfinite(got).all()
        assert np.abs(got - ref).max() < 0.5 * np.abs(ref).max()  # reduced precision, same model


def test_openvino_is_thread_safe(tiny_bundle_pristine: Path):
    from concurrent.futures import ThreadPoolExecutor

    samples = _samples(16)
    with Pipeline.from_bundle(tiny_bundle_pristine, "openvino", threads=1) as pipe:
        one_by_one = [pipe.predict_batch([s]).logits for s in samples]
        with ThreadPoolExecutor(4) as pool:
            shared = list(pool.map(lambda s: pipe.predict_batch([s]).logits, samples))
    for a, b in zip(one_by_one, shared, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_tampered_artifact_is_refused(tiny_bundle: Path):
    path = tiny_bundle / "image.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"bundle file altered: .*image\.onnx"):
        Pipeline.from_bundle(tiny_bundle, "openvino")


def test_missing_openvino_names_the_extra(tiny_bundle_pristine: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    runner = make_runner(Bundle.load(tiny_bundle_pristine), "image", "fp32", RunnerOptions(), "openvino")
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmedge\[openvino\]'"):
        runner.activate()


def test_unknown_and_bad_options(tiny_bundle_pristine: Path):
    with pytest.raises(BackendError, match="unknown option"):
        Pipeline.from_bundle(tiny_bundle_pristine, "openvino", cuda_graph=True)
    with pytest.raises(BackendError, match="hint must be one of"):
        Pipeline.from_bundle(tiny_bundle_pristine, "openvino", hint="FASTEST")
