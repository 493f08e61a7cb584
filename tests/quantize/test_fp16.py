"""FP16 pass: float16 weights, float32 I/O, the documented block list kept in float32, sane on ORT CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from mmedge.bundle import Bundle
from mmedge.quantize.fp16 import convert_fp16, fold_cast_round_trips, frontend_nodes, to_fp16

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    return types


def test_io_stays_float32_and_weights_become_float16(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        model = onnx.load(str(bundle.artifact_path(name, "fp16")))
        assert all(v.type.tensor_type.elem_type in (FLOAT, TensorProto.INT64) for v in model.graph.input)
        assert all(v.type.tensor_type.elem_type == FLOAT for v in model.graph.output)
        assert any(t.data_type == HALF for t in model.graph.initializer), name


def test_audio_front_end_and_layernorm_stay_float32(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    audio = onnx.load(str(bundle.artifact_path("audio", "fp16")))
    types = tensor_types(audio)
    blocked = set(bundle.artifact("audio", "fp16").settings["fp32_nodes"])
    assert {"Log", "MatMul", "Conv", "Mul"} <= {n.op_type for n in audio.graph.node if n.name in blocked}
    for node in audio.graph.node:
        if node.name in blocked and node.op_type != "Constant":
            float_io = [t for t in [*node.input, *node.output] if types.get(t) in (FLOAT, HALF)]
            assert all(types[t] == FLOAT for t in float_io), (node.name, node.op_type)
    head = onnx.load(str(bundle.artifact_path("fusion_head", "fp16")))
    head_types = tensor_types(head)
    norm = next(n for n in head.graph.node if n.op_type == "LayerNormalization")
    assert all(head_types[t] == FLOAT for t in [*norm.input, *norm.output] if t)


def test_no_float16_round_trip_inside_blocked_regions(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    model = onnx.load(str(bundle.artifact_path("audio", "fp16")))
    assert fold_cast_round_trips(model) == 0
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert len(casts) == 2  # the Log output into the fp16 CNN, and the fp32 graph output


def test_fp16_parity_recorded_and_small(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        parity = bundle.artifact(name, "fp16").parity
        assert parity["reference"] == "onnx fp32" and parity["samples"] > 0
        assert parity["max_abs_diff"] < 0.05, (name, parity)


def test_softmax_is_blocked_in_a_small_graph(tmp_path: Path):
    w = helper.make_tensor("w", FLOAT, [4, 4], np.linspace(-1, 1, 16).astype(np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Softmax", ["h"], ["y"], name="sm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("y", FLOAT, ["b", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    converted, settings = to_fp16(model)
    assert settings["fp32_op_types"] == ["Softmax"]
    types = tensor_types(converted)
    sm = next(n for n in converted.graph.node if n.op_type == "Softmax")
    assert types[sm.input[0]] == FLOAT and types[sm.output[0]] == FLOAT
    onnx.save(converted, str(tmp_path / "m.onnx"))
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    y = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert y.dtype == np.float32 and np.allclose(y.sum(axis=1), 1.0, atol=1e-3)


def test_convert_is_atomic_and_frontend_found(tiny_bundle_pristine: Path, tmp_path: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    src = bundle.artifact_path("audio", "fp32")
    assert "/frontend/Log" in frontend_nodes(onnx.load(str(src)))
    settings = convert_fp16(src, tmp_path / "audio.fp16.onnx")
    assert settings["keep_io_types"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["audio.fp16.onnx"]
