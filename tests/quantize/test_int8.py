"""INT8: both flavours are valid ONNX that run on ORT, calibrated on real data; the TensorRT checker's verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from mmedge.bundle import Bundle
from mmedge.quantize.calibration import FeedReader, component_feeds, load_samples
from mmedge.quantize.int8 import TRT_SCHEME, family, quantize_int8
from mmedge.quantize.qdq_check import check_trt_qdq
from mmedge.runtime.pipeline import Pipeline
from mmedge.specs import HEAD, embedding_name


@pytest.fixture(scope="module")
def image_feeds(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    return component_feeds(bundle, load_samples(bundle, None, "train", 16), ["image"])


@pytest.mark.parametrize("key", ["int8", "int8-trt"])
def test_both_flavours_are_valid_onnx_and_run(quantized_bundle_pristine: Path, key: str):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        path = bundle.artifact_path(name, key)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with Pipeline.from_bundle(quantized_bundle_pristine, precision=key) as pipe:
        assert pipe.predict(text="seven").label in bundle.labels


def test_trt_flavour_passes_the_checker_and_cpu_flavour_does_not(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        assert check_trt_qdq(bundle.artifact_path(name, "int8-trt")) == [], name
        art = bundle.artifact(name, "int8-trt")
        assert art.settings["qdq_check"] == "passed" and art.settings["scheme"]["symmetric_activations"]
    cpu = check_trt_qdq(bundle.artifact_path("image", "int8"))
    assert any("uint8" in p for p in cpu) or any("int32" in p for p in cpu)


def test_trt_flavour_keeps_the_audio_front_end_float(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    art = bundle.artifact("audio", "int8-trt")
    assert "/frontend/Log" in art.settings["excluded_nodes"]
    model = onnx.load(str(bundle.artifact_path("audio", "int8-trt")))
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    dft = next(n for n in model.graph.node if n.name == "/frontend/Conv")
    mel = next(n for n in model.graph.node if n.name == "/frontend/MatMul")
    assert dft.input[1] in floats and mel.input[1] in floats  # fixed DFT/mel weights, not dequantized


def test_checker_rejects_asymmetric_uint8(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    out = tmp_path / "u8.onnx"
    quantize_static(str(src), str(out), image_feeds.reader("image"), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    problems = check_trt_qdq(out)
    assert any("zero point is uint8" in p for p in problems)


def test_checker_rejects_per_tensor_weights(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    out = tmp_path / "pt.onnx"
    quantize_static(str(src), str(out), image_feeds.reader("image"), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False,
                    op_types_to_quantize=["Conv", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    problems = check_trt_qdq(out)
    assert problems and all("per tensor" in p for p in problems), problems


def test_checker_rejects_a_float_model_and_missing_placement(tiny_bundle_pristine: Path):
    problems = check_trt_qdq(Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32"))
    assert problems[0].startswith("no QuantizeLinear/DequantizeLinear")
    assert any("Q/DQ placement" in p for p in problems)


def test_reader_is_re_iterable(image_feeds):
    reader = image_feeds.reader("image")
    first = [reader.get_next() for _ in range(len(reader))]
    assert reader.get_next() is None
    reader.rewind()
    assert all(np.array_equal(reader.get_next()["pixel_values"], f["pixel_values"]) for f in first)
    assert isinstance(reader, FeedReader)


def test_head_is_calibrated_on_real_encoder_outputs(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    samples = load_samples(bundle, None, "train", 8)
    feeds = component_feeds(bundle, samples, ["image", HEAD])
    head_feed = feeds.feeds[HEAD][0]
    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        batch = pipe.preprocess(samples.samples[:8])
        expected = pipe.encode(batch)
    np.testing.assert_allclose(head_feed[embedding_name("image")], expected["image"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(head_feed["present"], batch.present)


def test_quantize_int8_trt_scheme_directly(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    settings = quantize_int8(src, tmp_path / "image.int8-trt.onnx", image_feeds.reader("image"), target="tensorrt",
                             method="percentile")
    assert settings["scheme"] == TRT_SCHEME.to_json() and settings["calibration"] == {"method": "percentile"}
    assert family(onnx.load(str(src))) == "conv"
    assert check_trt_qdq(tmp_path / "image.int8-trt.onnx") == []


# ---- the checker on hand-built graphs: each rule, each verdict (fast, no fixture) ----------------------
def _const(name: str, values: list[float] | list[int], dtype: int, dims: list[int] | None = None) -> onnx.TensorProto:
    return onnx.helper.make_tensor(name, dtype, dims if dims is not None else [len(values)], values)


def _qdq_matmul(zero_point: list[int] | None = (0,), zp_dtype: int = onnx.TensorProto.INT8, op: str = "MatMul",
                weight_axis: int | None = None, weight_scales: int = 3, trans_b: int | None = None,
                zp_as_constant_node: bool = False, float_weight: bool = False) -> onnx.ModelProto:
    """x [1, 4] → Q/DQ → op with a weight [4, 3] (or [3, 4] for Gemm transB=1) dequantized from int8."""
    i8, f32 = onnx.TensorProto.INT8, onnx.TensorProto.FLOAT
    w_dims = [3, 4] if trans_b else [4, 3]
    inits = [_const("s", [0.1], f32, []), _const("w_q", [1] * 12, i8, w_dims),
             _const("w_s", [0.05] * weight_scales, f32, [weight_scales] if weight_scales > 1 else []),
             _const("w_zp", [0] * weight_scales, i8, [weight_scales] if weight_scales > 1 else []),
             _const("w_f", [0.5] * 12, f32, w_dims)]
    nodes = []
    zp_inputs: list[str] = []
    if zero_point is not None:
        zp = _const("zp", list(zero_point), zp_dtype, [])
        if zp_as_constant_node:
            nodes.append(onnx.helper.make_node("Constant", [], ["zp"], value=zp, name="zp_const"))
        else:
            inits.append(zp)
        zp_inputs = ["zp"]
    nodes += [onnx.helper.make_node("QuantizeLinear", ["x", "s", *zp_inputs], ["x_q"], name="q_x"),
              onnx.helper.make_node("DequantizeLinear", ["x_q", "s", *zp_inputs], ["x_dq"], name="dq_x")]
    axis = {} if weight_axis is None else {"axis": weight_axis}
    nodes.append(onnx.helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w_dq"], name="dq_w", **axis))
    extra = {} if trans_b is None else {"transB": trans_b}
    nodes.append(onnx.helper.make_node(op, ["x_dq", "w_f" if float_weight else "w_dq"], ["y"], name="mm", **extra))
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", f32, [1, 4])],
                                   [onnx.helper.make_tensor_value_info("y", f32, [1, 3])], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_checker_accepts_a_symmetric_per_channel_graph():
    assert check_trt_qdq(_qdq_matmul()) == []
    assert check_trt_qdq(_qdq_matmul(zp_as_constant_node=True)) == []  # a zero point from a Constant node
    assert check_trt_qdq(_qdq_matmul(weight_axis=-1)) == []  # axis -1 of a rank-2 weight is axis 1
    assert check_trt_qdq(_qdq_matmul(op="Gemm", weight_axis=0, trans_b=1)) == []  # transB: [N, K], axis 0
    assert check_trt_qdq(_qdq_matmul(op="Gemm", trans_b=0)) == []


@pytest.mark.parametrize(("zero_point", "dtype", "words"), [
    ([3], onnx.TensorProto.INT8, "QuantizeLinear 'q_x': zero point is not 0 (asymmetric)"),
    ([-1], onnx.TensorProto.INT8, "DequantizeLinear 'dq_x': zero point is not 0 (asymmetric)"),
    ([0], onnx.TensorProto.UINT8, "QuantizeLinear 'q_x': zero point is uint8, need int8 (symmetric)"),
    (None, onnx.TensorProto.INT8, "QuantizeLinear 'q_x': no zero point (defaults to uint8); need int8 zero point 0"),
])  # fmt: skip
def test_checker_rejects_each_zero_point_problem(zero_point: list[int] | None, dtype: int, words: str):
    problems = check_trt_qdq(_qdq_matmul(zero_point, dtype))
    assert words in problems, problems
    assert len(problems) == 2  # the same problem on the Q and the DQ node, nothing else


def test_checker_rejects_a_zero_point_that_is_not_a_constant():
    model = _qdq_matmul()
    model.graph.initializer.remove(next(t for t in model.graph.initializer if t.name == "zp"))
    model.graph.input.append(onnx.helper.make_tensor_value_info("zp", onnx.TensorProto.INT8, []))
    assert "QuantizeLinear 'q_x': zero point 'zp' is not a constant" in check_trt_qdq(model)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"weight_scales": 1}, "MatMul 'mm': weight 'w_q' is quantized per tensor; need per-channel (axis 1)"),
    ({"weight_axis": 0, "weight_scales": 4},
     "MatMul 'mm': weight DequantizeLinear 'dq_w' has axis 0 with 4 scales; need axis 1 (3 output channels)"),
    ({"weight_axis": 1, "weight_scales": 4},
     "MatMul 'mm': weight DequantizeLinear 'dq_w' has axis 1 with 4 scales; need axis 1 (3 output channels)"),
    ({"op": "Gemm", "trans_b": 1, "weight_axis": 1, "weight_scales": 4},
     "Gemm 'mm': weight DequantizeLinear 'dq_w' has axis 1 with 4 scales; need axis 0 (3 output channels)"),
    ({"op": "Gemm", "weight_axis": 0, "weight_scales": 4},
     "Gemm 'mm': weight DequantizeLinear 'dq_w' has axis 0 with 4 scales; need axis 1 (3 output channels)"),
    ({"float_weight": True}, "MatMul 'mm': weight input 'w_f' is not fed by a DequantizeLinear (Q/DQ placement)"),
])  # fmt: skip
def test_checker_rejects_each_weight_problem(kwargs: dict[str, Any], words: str):
    assert check_trt_qdq(_qdq_matmul(**kwargs)) == [words]


def test_exempt_nodes_skip_the_weight_and_placement_rules_only():
    per_tensor = _qdq_matmul(weight_scales=1, zero_point=[5])
    problems = check_trt_qdq(per_tensor, exempt=["mm"])
    assert problems and all("zero point is not 0" in p for p in problems)


def _gelu_chain(hops: int, op: str = "Erf") -> onnx.ModelProto:
    """x → op → (hops - 1) × Relu → MatMul(name 'down')."""
    f32 = onnx.TensorProto.FLOAT
    nodes = [onnx.helper.make_node(op, ["x"], ["h0"], name="act")]
    for i in range(1, hops):
        nodes.append(onnx.helper.make_node("Relu", [f"h{i - 1}"], [f"h{i}"], name=f"relu{i}"))
    nodes.append(onnx.helper.make_node("MatMul", [f"h{hops - 1}", "w"], ["y"], name="down"))
    nodes.append(onnx.helper.make_node("MatMul", ["x", "w"], ["y2"], name="up"))
    graph = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("x", f32, [1, 4])],
                                   [onnx.helper.make_tensor_value_info("y", f32, [1, 3]),
                                    onnx.helper.make_tensor_value_info("y2", f32, [1, 3])],
                                   [_const("w", [0.5] * 12, f32, [4, 3])])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("hops", "op", "found"), [(1, "Erf", True), (4, "Erf", True), (5, "Erf", False),
                                                   (1, "Tanh", True), (1, "Relu", False)])
def test_gelu_fed_projections_are_found_within_four_hops(hops: int, op: str, found: bool):
    from mmedge.quantize.qdq_check import gelu_fed

    assert gelu_fed(_gelu_chain(hops, op)) == (["down"] if found else [])
