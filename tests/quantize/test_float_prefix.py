"""The float-prefix search of the cpu int8 flavour: budget, node selection and the choice it records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmedge.bundle import Bundle
from mmedge.quantize.calibration import component_feeds, load_samples
from mmedge.quantize.float_prefix import TOLERANCE, candidates, layer_macs, prefix_nodes
from mmedge.quantize.int8 import CPU_SCHEMES, quantize_int8
from mmedge.quantize.weight_rounding import weighted_layers


def test_candidates_stay_within_the_mac_budget():
    assert candidates([5, 5, 90], 0.10) == [0, 1, 2]  # 10 % of the MACs: at the budget
    assert candidates([50, 25, 25], 0.10) == [0]  # the first layer alone is over budget
    assert candidates([1] * 100, 0.25) == list(range(26))


def test_prefix_nodes_stop_before_the_first_quantized_layer():
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), dtype=np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="c1"),
             helper.make_node("Relu", ["a"], ["b"], name="r1"),
             helper.make_node("Conv", ["b", "w"], ["c"], name="c2"),
             helper.make_node("Relu", ["c"], ["y"], name="r2")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], [w]))
    layers = weighted_layers(model, None, [])
    assert [prefix_nodes(model, layers, k) for k in range(3)] == [[], ["c1", "r1"], ["c1", "r1", "c2", "r2"]]


@pytest.fixture(scope="module")
def feeds(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    return component_feeds(bundle, load_samples(bundle, None, "train", 16), ["image"])


def test_cpu_flavour_records_its_choice_and_keeps_those_layers_float(tiny_bundle_pristine: Path, feeds,
                                                                     tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    settings = quantize_int8(src, tmp_path / "image.int8.onnx", feeds.reader("image"), target="cpu")
    prefix = settings["float_prefix"]
    errors = {int(k): v for k, v in prefix["mean_abs_error_by_layers"].items()}
    assert 0 in errors and prefix["macs_fraction"] <= CPU_SCHEMES["conv"].float_prefix_macs
    best = min(errors.values())
    assert prefix["layers"] == min(k for k, e in errors.items() if e <= TOLERANCE * best)
    model = onnx.load(str(tmp_path / "image.int8.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    floats = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    for i, conv in enumerate(convs):  # the first `layers` convs read float weights, the rest dequantized ones
        assert (conv.input[1] in floats) == (i < prefix["layers"]), conv.name
    trt = quantize_int8(src, tmp_path / "image.int8-trt.onnx", feeds.reader("image"), target="tensorrt")
    assert trt["float_prefix"] is None


def test_layer_macs_come_from_the_cost_model():
    w1 = numpy_helper.from_array(np.ones((4, 2, 3, 3), dtype=np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((6, 4), dtype=np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["a"], ["f"], name="fl"),
             helper.make_node("Slice", ["f", "s0", "s1", "ax"], ["g"], name="sl"),
             helper.make_node("MatMul", ["g", "w2"], ["y"], name="m1")]
    consts = [numpy_helper.from_array(np.array(v, dtype=np.int64), n) for n, v in
              (("s0", [0]), ("s1", [6]), ("ax", [1]))]
    io = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 5, 5]),
          helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])]
    model = helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], [w1, w2, *consts]),
                              opset_imports=[helper.make_opsetid("", 17)])
    layers = weighted_layers(model, None, [])
    feed = {"x": np.zeros((3, 2, 5, 5), dtype=np.float32)}
    # Conv: out [3,4,5,5] x 2*3*3 per output; MatMul: out [3,4] x K=6
    assert layer_macs(model, layers, feed) == [3 * 4 * 5 * 5 * 18, 3 * 4 * 6]
