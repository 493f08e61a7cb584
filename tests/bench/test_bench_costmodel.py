"""Parameters and MACs of small hand-built ONNX graphs, checked against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmedge.bench.costmodel import Cost, count_cost, node_macs
from mmedge.errors import InputError

FLOAT = TensorProto.FLOAT


def _init(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> onnx.TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype), name)


def _dyn(rank: int) -> list[str]:
    """A fully symbolic output shape, as exporters write for outputs they do not resolve."""
    return [f"d{i}" for i in range(rank)]


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _save(model, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("opset", [17, 18, 19, 20])
def test_conv_with_dynamic_batch(tmp_path: Path, opset: int) -> None:
    # X [N,3,32,32] -> Conv 3x3 pad 1 (16 out) -> [N,16,32,32] -> grouped strided Conv (g=4) -> [N,16,16,16]
    conv1 = helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1])
    conv2 = helper.make_node("Conv", ["h", "w2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], group=4)
    model = _model(
        [conv1, conv2],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 16, 16, 16])],
        [_init("w1", (16, 3, 3, 3)), _init("b1", (16,)), _init("w2", (16, 4, 3, 3))],
        opset,
    )
    cost = count_cost(_save(model, tmp_path), {"x": (2, 3, 32, 32)})
    conv1_macs = 2 * 16 * 32 * 32 * (3 * 3 * 3)
    conv2_macs = 2 * 16 * 16 * 16 * (4 * 3 * 3)
    assert cost.by_op == {"Conv": conv1_macs + conv2_macs}
    assert cost.macs == conv1_macs + conv2_macs and cost.flops == 2 * cost.macs
    assert cost.params == 16 * 27 + 16 + 16 * 4 * 9
    assert cost.quantized_macs == 0 and cost.uncounted == {}
    assert cost.input_shapes == {"x": [2, 3, 32, 32]}
    # the batch scales MACs linearly, not parameters
    cost1 = count_cost(model, {"x": (1, 3, 32, 32)})
    assert cost1.macs * 2 == cost.macs and cost1.params == cost.params


def test_matmul_gemm_with_batch_and_seq(tmp_path: Path) -> None:
    # x [B,S,64] @ W[64,32] -> [B,S,32]; reduce over seq -> [B,32]; Gemm with B^T [10,32] -> [B,10]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["p"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["p", "wg", "bg"], ["y"], transB=1),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["batch", "seq", 64])],
        [helper.make_tensor_value_info("y", FLOAT, ["batch", 10])],
        [_init("w", (64, 32)), _init("wg", (10, 32)), _init("bg", (10,))],
    )
    cost = count_cost(_save(model, tmp_path), {"x": (4, 128, 64)})
    assert cost.by_op == {"MatMul": 4 * 128 * 32 * 64, "Gemm": 4 * 10 * 32}
    assert cost.params == 64 * 32 + 10 * 32 + 10
    # named axes instead of a full shape
    assert count_cost(model, {}, axes={"batch": 4, "seq": 128}).macs == cost.macs


def test_gemm_trans_a_and_broadcast_batched_matmul() -> None:
    nodes = [
        helper.make_node("Gemm", ["a", "b"], ["g"], transA=1),  # a [K=6, M=5] -> A^T [5,6] @ b [6,7]
        helper.make_node("MatMul", ["q", "k"], ["s"]),  # [2,4,8,16] @ [16,8] -> [2,4,8,8]
    ]
    model = _model(
        nodes,
        [
            helper.make_tensor_value_info("a", FLOAT, [6, 5]),
            helper.make_tensor_value_info("q", FLOAT, [2, 4, 8, 16]),
        ],
        [
            helper.make_tensor_value_info("g", FLOAT, ["m", "n"]),
            helper.make_tensor_value_info("s", FLOAT, _dyn(4)),
        ],
        [_init("b", (6, 7)), _init("k", (16, 8))],
    )
    cost = count_cost(model, {})
    assert cost.by_op == {"Gemm": 5 * 7 * 6, "MatMul": 2 * 4 * 8 * 8 * 16}


@pytest.mark.parametrize("opset", [17, 20])
def test_weights_in_constant_nodes(opset: int) -> None:
    w = numpy_helper.from_array(np.ones((64, 32), np.float32), "wc")
    w2 = numpy_helper.from_array(np.ones((8, 32, 3), np.float32), "wk")
    nodes = [
        helper.make_node("Constant", [], ["w"], value=w),
        helper.make_node("MatMul", ["x", "w"], ["h"]),  # [B,16,64] @ [64,32] -> [B,16,32]
        helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),  # [B,32,16]
        helper.make_node("Constant", [], ["k"], value=w2),
        helper.make_node("Conv", ["ht", "k"], ["y"]),  # Conv1d k=3 -> [B,8,14]
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Reshape", ["y", "shape"], ["flat"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["B", 16, 64])],
        [helper.make_tensor_value_info("flat", FLOAT, ["n"])],
        opset=opset,
    )
    cost = count_cost(model, {"x": (3, 16, 64)})
    assert cost.by_op == {"MatMul": 3 * 16 * 32 * 64, "Conv": 3 * 8 * 14 * 32 * 3}
    assert cost.params == 64 * 32 + 8 * 32 * 3  # the int64 shape constant is not a parameter


def test_conv_transpose() -> None:
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    model = _model(
        [node],
        [helper.make_tensor_value_info("x", FLOAT, [1, 8, 5, 5])],
        [helper.make_tensor_value_info("y", FLOAT, _dyn(4))],
        [_init("w", (8, 4, 3, 3))],
    )
    cost = count_cost(model, {})
    assert cost.by_op == {"ConvTranspose": 1 * 8 * 5 * 5 * 4 * 3 * 3}
    assert cost.params == 8 * 4 * 9


def _qdq_conv_model(opset: int = 19):
    scale_x = numpy_helper.from_array(np.array(0.02, np.float32), "sx")
    zp_x = numpy_helper.from_array(np.array(0, np.int8), "zx")
    w_q = numpy_helper.from_array(np.ones((16, 3, 3, 3), np.int8), "wq")
    scale_w = numpy_helper.from_array(np.full((16,), 0.01, np.float32), "sw")
    zp_w = numpy_helper.from_array(np.zeros((16,), np.int8), "zw")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", FLOAT, _dyn(4))],
        [scale_x, zp_x, w_q, scale_w, zp_w],
        opset,
    )


def test_qdq_conv_counts_as_quantized_and_ignores_qparams() -> None:
    cost = count_cost(_qdq_conv_model(), {"x": (1, 3, 8, 8)})
    macs = 1 * 16 * 8 * 8 * 27
    assert cost.by_op == {"Conv": macs} and cost.quantized_macs == macs
    assert cost.params == 16 * 27  # int8 weights; scales and zero points excluded


def test_qlinear_matmul() -> None:
    q = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "z"),
        numpy_helper.from_array(np.ones((32, 16), np.uint8), "b"),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "s", "z", "b", "s", "z", "s", "z"], ["y"])
    model = _model(
        [node],
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, _dyn(2))],
        q,
    )
    cost = count_cost(model, {"a": (5, 32)})
    assert cost.by_op == {"QLinearMatMul": 5 * 16 * 32} and cost.quantized_macs == 5 * 16 * 32
    assert cost.params == 32 * 16


def test_uncounted_heavy_ops_are_reported() -> None:
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")
    model = _model(
        [node],
        [helper.make_tensor_value_info("a", FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", FLOAT, _dyn(2))],
        [_init("b", (3, 4))],
    )
    cost = count_cost(model, {})
    assert cost.macs == 0 and cost.uncounted == {"Einsum": 1}


def test_input_errors(tmp_path: Path) -> None:
    model = _qdq_conv_model()
    with pytest.raises(InputError, match="dynamic dimension 'N'"):
        count_cost(model, {})
    with pytest.raises(InputError, match="does not have"):
        count_cost(model, {"nope": (1,)})
    with pytest.raises(InputError, match="rank"):
        count_cost(model, {"x": (1, 3, 8)})
    with pytest.raises(InputError, match="fixed at 3"):
        count_cost(model, {"x": (1, 4, 8, 8)})
    with pytest.raises(InputError, match="not found"):
        count_cost(tmp_path / "missing.onnx", {})
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(InputError):
        count_cost(tmp_path / "junk.onnx", {})


def test_cost_json_and_sum() -> None:
    a = Cost(params=10, macs=100, by_op={"Conv": 100}, uncounted={"Einsum": 1}, input_shapes={"x": [1]})
    b = Cost(params=5, macs=50, by_op={"Conv": 20, "MatMul": 30}, quantized_macs=50)
    assert Cost.from_json(a.to_json()) == a
    assert list(a.to_json()) == ["params", "macs", "by_op", "quantized_macs", "uncounted", "input_shapes"]
    assert Cost.from_json({"params": 1, "macs": 2, "by_op": {}}) == Cost(1, 2, {})  # optional keys default
    with pytest.raises(InputError, match=r"cost\.by_op\.Conv: expected int"):
        Cost.from_json({**a.to_json(), "by_op": {"Conv": "many"}})
    total = a + b
    assert total.params == 15 and total.macs == 150 and total.quantized_macs == 50
    assert total.by_op == {"Conv": 120, "MatMul": 30} and total.uncounted == {"Einsum": 1}


def _unresolvable_reshape_model():
    # Mod is outside ONNX data propagation, so Reshape's output shape stays unknown statically.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mod", ["s", "big"], ["s2"]),
        helper.make_node("Reshape", ["x", "s2"], ["h"]),
        helper.make_node("MatMul", ["h", "w"], ["y"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", FLOAT, _dyn(2))],
        [numpy_helper.from_array(np.array([1 << 20], np.int64), "big"), _init("w", (16, 8))],
    )


def test_runtime_fallback_resolves_shapes_inference_cannot(tmp_path: Path) -> None:
    model = _unresolvable_reshape_model()
    static_only = count_cost(model, {"x": (3, 16)}, runtime_fallback=False)
    assert static_only.macs == 0 and static_only.uncounted == {"MatMul": 1}
    cost = count_cost(_save(model, tmp_path), {"x": (3, 16)})
    assert cost.by_op == {"MatMul": 3 * 8 * 16} and cost.uncounted == {}
    assert cost.params == 16 * 8  # the int64 constant is not a parameter


@pytest.mark.filterwarnings("ignore")
def test_torchscript_export_of_a_small_attention_model(tmp_path: Path) -> None:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = torch.nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x).flatten(2).transpose(1, 2)  # [B, HW, 8]
            a, _ = self.attn(h, h, h)
            return self.head(a.mean(1))

    model = Tiny().eval()
    path = tmp_path / "tiny.onnx"
    # mmedge's own exporter uses the TorchScript exporter: if it ever disappears, this must fail, not skip
    torch.onnx.export(
        model, (torch.randn(2, 3, 16, 16),), str(path), input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    cost = count_cost(path, {"x": (4, 3, 16, 16)})
    b, hw, d, heads = 4, 16 * 16, 8, 2
    conv = b * d * hw * 27
    attention = 4 * b * hw * d * d + 2 * b * heads * hw * hw * (d // heads)  # q,k,v,out proj + QK^T, AV
    head = b * 5 * d
    assert cost.macs == conv + attention + head
    assert cost.params == sum(p.numel() for p in model.parameters())


def test_node_macs_is_the_per_node_count_that_count_cost_sums() -> None:
    # one counter for both users: the cost model (sum) and the float-prefix budget (per layer)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["h", "w2"], ["y"], strides=[2, 2]),
        helper.make_node("Relu", ["y"], ["r"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("r", FLOAT, ["N", 4, 4, 4])],
        [_init("w1", (8, 3, 3, 3)), _init("w2", (4, 8, 1, 1))],
    )
    per_node = node_macs(model, {"x": (2, 3, 8, 8)})
    assert per_node == {"h": 2 * 8 * 8 * 8 * 27, "y": 2 * 4 * 4 * 4 * 8}  # Relu is not a counted op
    assert sum(v or 0 for v in per_node.values()) == count_cost(model, {"x": (2, 3, 8, 8)}).macs
