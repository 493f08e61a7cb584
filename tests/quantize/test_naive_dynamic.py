"""The naive int8 peer: ONNX Runtime's quantize_dynamic with its defaults, on real exported graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mmedge.quantize.naive_dynamic import naive_dynamic_int8


def _run(model: bytes, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def test_naive_int8_quantizes_every_weighted_op_and_stays_close(tiny_bundle_pristine: Path):
    fp32 = (tiny_bundle_pristine / "image.onnx").read_bytes()
    naive = naive_dynamic_int8(fp32)
    ops = {n.op_type for n in onnx.load_from_string(naive).graph.node}
    assert "DynamicQuantizeLinear" in ops and ({"ConvInteger", "MatMulInteger"} & ops)
    assert "Conv" not in ops  # the defaults quantize every Conv (what makes it slow on CPU)
    x = np.random.default_rng(0).random((2, *_image_shape(fp32)), dtype=np.float32)
    ref, got = _run(fp32, {"pixel_values": x}), _run(naive, {"pixel_values": x})
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 0.25 * np.abs(ref).max() + 1e-3


def _image_shape(model: bytes) -> tuple[int, ...]:
    dims = onnx.load_from_string(model).graph.input[0].type.tensor_type.shape.dim[1:]
    return tuple(int(d.dim_value) for d in dims)


def test_the_apps_logging_disable_level_survives(tiny_bundle_pristine: Path):
    import logging

    before = logging.root.manager.disable
    try:
        logging.disable(logging.ERROR)  # the application's own choice
        naive_dynamic_int8((tiny_bundle_pristine / "fusion_head.onnx").read_bytes())
        assert logging.root.manager.disable == logging.ERROR
        logging.disable(logging.NOTSET)
        naive_dynamic_int8((tiny_bundle_pristine / "fusion_head.onnx").read_bytes())
        assert logging.root.manager.disable == logging.NOTSET
    finally:
        logging.disable(before)
