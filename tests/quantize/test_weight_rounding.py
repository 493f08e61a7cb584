"""GPTQ weight rounding: im2col agrees with ONNX Runtime's Conv, GPTQ beats round-to-nearest on the layer
output, and the quantizer stores exactly the GPTQ integers (real ONNX models, real ORT sessions)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmedge.bundle import Bundle
from mmedge.quantize.calibration import component_feeds, load_samples
from mmedge.quantize.int8 import CPU_SCHEMES, quantize_int8
from mmedge.quantize.weight_rounding import (
    accumulate_hessians,
    gptq,
    grouped_weight,
    output_error,
    patches,
    round_weights,
    weighted_layers,
)


def conv_model(weight: np.ndarray, group: int, stride: int, pad: int) -> onnx.ModelProto:
    """One Conv with a constant weight and dynamic batch."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group, strides=[stride, stride],
                            pads=[pad] * 4)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("group", "stride", "pad"), [(1, 1, 0), (1, 2, 1), (4, 1, 1), (2, 2, 0)])
def test_patches_reproduce_onnx_runtime_conv(group: int, stride: int, pad: int):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 4 // group, 3, 3)).astype(np.float32)
    model = conv_model(weight, group, stride, pad)
    x = rng.normal(size=(2, 4, 9, 9)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    layer = weighted_layers(model, None, [])[0]
    cols = patches(layer, x, (3, 3))  # [G, N*P, K]
    got = np.einsum("grk,gok->rgo", cols, grouped_weight(layer, weight))  # rows ordered (n, position)
    n, _, ho, wo = want.shape
    got = got.reshape(n, ho * wo, -1).transpose(0, 2, 1).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gptq_output_error_is_lower_than_round_to_nearest():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(32, 32))
    x = rng.normal(size=(4096, 32)) @ mix  # correlated inputs: where error compensation pays
    h = (x.T @ x / len(x))[None]
    w = rng.normal(size=(1, 16, 32))
    scale = np.abs(w).max(axis=2) / 127
    q = gptq(w, h, scale)
    assert np.array_equal(q, np.round(q)) and np.abs(q).max() <= 127
    nearest = np.clip(np.round(w / scale[:, :, None]), -127, 127) * scale[:, :, None]
    assert output_error(w, q * scale[:, :, None], h) < 0.7 * output_error(w, nearest, h)


def smooth_images(rng: np.random.Generator, n: int) -> np.ndarray:
    """Images whose neighbouring pixels correlate, as real ones do (random walks along both axes)."""
    x = rng.normal(size=(n, 4, 9, 9)).cumsum(axis=2).cumsum(axis=3)
    return (x / x.std()).astype(np.float32)


def test_round_weights_of_a_depthwise_conv_lowers_its_output_error():
    rng = np.random.default_rng(2)
    weight = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    model = conv_model(weight, group=4, stride=1, pad=1)
    feeds = [{"x": smooth_images(rng, 4)} for _ in range(3)]
    layers = weighted_layers(model, None, [])
    hessians = accumulate_hessians(model, layers, feeds)
    assert hessians[0].shape == (4, 9, 9)
    overrides, summary = round_weights(model, layers, hessians)
    assert summary["layers"] == 1 and summary["output_error_vs_nearest"] < 1.0
    rounded = numpy_helper.to_array(model.graph.initializer[0])
    scales = np.array([o["scale"] for o in overrides["w"]], dtype=np.float64)
    ints = rounded.reshape(4, -1) / scales[:, None]
    np.testing.assert_allclose(ints, np.round(ints), atol=1e-3)  # exact multiples of the override scales
    assert {o["axis"] for o in overrides["w"]} == {0}


@pytest.fixture(scope="module")
def image_feeds(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    return component_feeds(bundle, load_samples(bundle, None, "train", 16), ["image"])


def dequantized_weights(path: Path) -> dict[str, np.ndarray]:
    """{weight DequantizeLinear output: dequantized per-channel int8 weight} of a QDQ model."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and inits.get(node.input[0], np.zeros(0)).dtype == np.int8:
            q, scale = inits[node.input[0]].astype(np.float64), inits[node.input[1]]
            out[node.input[0]] = q * scale.reshape([-1] + [1] * (q.ndim - 1))
    return out


def test_quantizer_stores_the_gptq_integers(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    scheme = replace(CPU_SCHEMES["conv"], float_prefix_macs=0.0)  # the same layers quantized both ways
    settings = {}
    for rounding in ("gptq", "nearest"):
        settings[rounding] = quantize_int8(src, tmp_path / f"{rounding}.onnx", image_feeds.reader("image"),
                                           scheme=scheme, rounding=rounding)
    assert settings["gptq"]["weight_rounding"]["method"] == "gptq"
    assert settings["gptq"]["weight_rounding"]["output_error_vs_nearest"] < 1.0
    assert settings["nearest"]["weight_rounding"] == {"method": "nearest"}
    gptq_w, nearest_w = dequantized_weights(tmp_path / "gptq.onnx"), dequantized_weights(tmp_path / "nearest.onnx")
    assert gptq_w.keys() == nearest_w.keys() and gptq_w
    assert any(not np.allclose(gptq_w[k], nearest_w[k]) for k in gptq_w)  # GPTQ moved some integers
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    for key, value in nearest_w.items():  # round-to-nearest stays within half a step of the fp32 weight
        name = key.removesuffix("_quantized")
        if name in original and original[name].shape == value.shape:
            step = np.abs(original[name]).reshape(len(value), -1).max(axis=1) / 127
            assert (np.abs(value - original[name]).reshape(len(value), -1).max(axis=1) <= step * 0.5 + 1e-6).all()
