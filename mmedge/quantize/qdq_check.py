"""Checker for the TensorRT int8 flavour: what TensorRT's explicit (Q/DQ) quantization accepts.

Rules (each violation is one line naming the node):

1. every QuantizeLinear/DequantizeLinear has an explicit zero point that is int8 and all zeros
   (symmetric quantization; a missing zero point means uint8 for QuantizeLinear);
2. a weight (an initializer, input 1 of Conv/MatMul/Gemm) is dequantized per channel along its
   output-channel axis: Conv axis 0, MatMul axis rank−1 (weight [K, N]), Gemm axis 0 when
   transB=1 else 1 — a scale with one entry per output channel;
3. Q/DQ placement: the data and weight inputs of every Conv/MatMul/Gemm are produced by
   DequantizeLinear nodes, so TensorRT can fuse them into int8 kernels.

Nodes that the int8 pass deliberately leaves in float (``float_nodes``) are exempt from rule 3:
the audio front-end (everything up to the log-mel Log; see mmedge.quantize.int8) and MatMul/Gemm
fed by a GELU — the FFN down-projections of transformers, whose inputs carry outlier channels
(Bondarenko et al., 2021) that one per-tensor symmetric int8 scale cannot represent: on MiniLM-L6,
quantizing them cost far more embedding accuracy than all other MatMuls together.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from mmedge.quantize.fp16 import frontend_nodes, producers

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")


GELU_OPS = ("Erf", "Gelu", "FastGelu", "BiasGelu", "Tanh")


def gelu_fed(model: onnx.ModelProto, depth: int = 4) -> list[str]:
    """MatMul/Gemm nodes whose data input comes from a GELU within `depth` producer hops."""
    made_by = producers(model)
    names = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        frontier, found = [node.input[0]], False
        for _ in range(depth):
            nodes = [made_by[t] for t in frontier if t in made_by]
            if any(n.op_type in GELU_OPS for n in nodes):
                found = True
                break
            frontier = [t for n in nodes for t in n.input]
        if found:
            names.append(node.name)
    return names


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes the int8 pass keeps in float: the audio front-end and GELU-fed projections."""
    return sorted(set(frontend_nodes(model)) | set(gelu_fed(model)))


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node values by tensor name."""
    out = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = a.t
    return out


def check_zero_points(model: onnx.ModelProto) -> list[str]:
    """Rule 1: explicit int8 zero points that are all 0."""
    consts = _constants(model)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        if len(node.input) < 3 or not node.input[2]:
            problems.append(f"{node.op_type} '{node.name}': no zero point (defaults to uint8); "
                            "need int8 zero point 0")
            continue
        zp = consts.get(node.input[2])
        if zp is None:
            problems.append(f"{node.op_type} '{node.name}': zero point '{node.input[2]}' is not a constant")
        elif zp.data_type != TensorProto.INT8:
            dtype = TensorProto.DataType.Name(zp.data_type).lower()
            problems.append(f"{node.op_type} '{node.name}': zero point is {dtype}, need int8 (symmetric)")
        elif numpy_helper.to_array(zp).any():
            problems.append(f"{node.op_type} '{node.name}': zero point is not 0 (asymmetric)")
    return problems


def weight_axis(node: onnx.NodeProto, rank: int) -> int:
    """Output-channel axis of input 1 of a Conv/MatMul/Gemm."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    return rank - 1


def check_weights(model: onnx.ModelProto, exempt: set[str]) -> list[str]:
    """Rule 2: per-channel weight dequantization along the output-channel axis."""
    consts, made_by = _constants(model), producers(model)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or node.name in exempt or len(node.input) < 2:
            continue
        dq = made_by.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in consts:
            continue  # an activation input (rule 3 covers it) or a float weight (rule 3 reports it)
        weight, scale = consts[dq.input[0]], consts.get(dq.input[1])
        rank = len(weight.dims)
        want = weight_axis(node, rank)
        channels = int(weight.dims[want])
        n_scales = int(scale.dims[0]) if scale is not None and len(scale.dims) == 1 else 1
        if scale is None or len(scale.dims) == 0 or (n_scales == 1 and channels != 1):
            problems.append(f"{node.op_type} '{node.name}': weight '{dq.input[0]}' is quantized per tensor; "
                            f"need per-channel (axis {want})")
            continue
        axis = _attr(dq, "axis", 1)
        axis = axis + rank if axis < 0 else axis
        if axis != want or n_scales != channels:
            problems.append(f"{node.op_type} '{node.name}': weight DequantizeLinear '{dq.name}' has axis "
                            f"{axis} with {n_scales} scales; need axis {want} ({channels} output channels)")
    return problems


def check_placement(model: onnx.ModelProto, exempt: set[str]) -> list[str]:
    """Rule 3: the data and weight inputs of Conv/MatMul/Gemm come from DequantizeLinear."""
    made_by = producers(model)
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or node.name in exempt:
            continue
        for i, name in enumerate(node.input[:2]):
            src = made_by.get(name)
            if src is None or src.op_type != "DequantizeLinear":
                what = "data" if i == 0 else "weight"
                problems.append(f"{node.op_type} '{node.name}': {what} input '{name}' is not fed by a "
                                "DequantizeLinear (Q/DQ placement)")
    return problems


def check_trt_qdq(model: onnx.ModelProto | str | Path, exempt: Iterable[str] | None = None) -> list[str]:
    """All violations of the TensorRT int8 rules (empty list: the model conforms)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    skip = set(float_nodes(model) if exempt is None else exempt)
    problems = check_zero_points(model) + check_weights(model, skip) + check_placement(model, skip)
    if not any(n.op_type in QDQ_OPS for n in model.graph.node):
        problems.insert(0, "no QuantizeLinear/DequantizeLinear nodes: the model is not quantized")
    return problems
