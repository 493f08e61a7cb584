"""Parameters and multiply-accumulates (MACs) of an ONNX graph at concrete input shapes.

Counts the ops that carry essentially all the arithmetic of our encoders: Conv, ConvTranspose,
MatMul, Gemm and their int8 forms (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
and the QDQ pattern DequantizeLinear -> Conv/MatMul/Gemm that TensorRT runs in int8).
Elementwise ops, normalizations and softmax are not counted (by convention, like most MAC
counters); other heavy ops (Einsum, RNNs, control flow) are reported in `Cost.uncounted`
so a low number is never silently wrong. One MAC = one multiply + one add = 2 FLOPs.

Parameters are the elements of initializers and Constant-node tensors with a floating or
8/4-bit integer type, excluding quantization scales and zero points (so an fp32, fp16 and
int8 export of one model report the same count) and 0-d scalars (epsilons, 1/sqrt(d)).
Fixed tensors built into the graph, such as the audio front-end's DFT basis, count as
parameters too.

`onnx` is imported lazily: it is part of the `train` extra, not the runtime.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge import serialize
from mmedge.errors import InputError, require

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

# op type -> index of the weight input whose dims (after the first) give the MACs per output element.
_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul"}
_INT8_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
_QDQ_CANDIDATES = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
_COUNTED_OPS = {*_CONV_WEIGHT, *_MATMUL_OPS, "ConvTranspose", "Gemm"}
_HEAVY_UNCOUNTED = {
    "Einsum", "LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention", "FusedMatMul",
    "QGemm", "QAttention", "DeformConv", "If", "Loop", "Scan",
}  # fmt: skip
# Inputs that are quantization parameters, not weights: excluded from the parameter count.
_QPARAM_INPUTS = {
    "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2},
    "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "ConvInteger": {2, 3},
    "MatMulInteger": {2, 3},
}


@dataclass(frozen=True)
class Cost:
    """Parameter count and MACs of one graph at one set of input shapes."""

    params: int
    macs: int
    by_op: dict[str, int]
    quantized_macs: int = 0
    uncounted: dict[str, int] = field(default_factory=dict)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """2 x MACs (one multiply and one add per MAC)."""
        return 2 * self.macs

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict."""
        return serialize.to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cost:
        """Rebuild from `to_json` output; InputError naming the bad key."""
        plain = dict(data) if isinstance(data, Mapping) else data
        return serialize.from_json(cls, plain, where="cost", error=InputError)

    def __add__(self, other: Cost) -> Cost:
        """Combine the costs of two components (e.g. every encoder plus the fusion head)."""
        by_op: Counter[str] = Counter(self.by_op)
        by_op.update(other.by_op)
        uncounted: Counter[str] = Counter(self.uncounted)
        uncounted.update(other.uncounted)
        return Cost(
            params=self.params + other.params,
            macs=self.macs + other.macs,
            by_op=dict(by_op),
            quantized_macs=self.quantized_macs + other.quantized_macs,
            uncounted=dict(uncounted),
            input_shapes={**self.input_shapes, **other.input_shapes},
        )


def _runtime_shapes(
    model: onnx.ModelProto, names: set[str], base_dir: Path | None
) -> dict[str, tuple[int, ...] | None]:
    """Shapes of `names` observed by running the model once on zeros with onnxruntime.

    Used only when static shape inference cannot resolve a counted op (e.g. the TorchScript
    exporter's Shape -> Slice -> Reshape chains). Returns {} when the model cannot run.
    """
    try:
        import numpy as np
        import onnxruntime as ort

        onnx_mod: Any = require("onnx", "Counting MACs of an ONNX graph", "onnx>=1.16")
        probe = onnx_mod.ModelProto()
        probe.CopyFrom(model)
        if base_dir is not None:
            onnx_mod.external_data_helper.load_external_data_for_model(probe, str(base_dir))
        existing = {o.name for o in probe.graph.output}
        probe.graph.output.extend(onnx_mod.ValueInfoProto(name=n) for n in sorted(names - existing))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        initializers = {t.name for t in probe.graph.initializer}
        feeds = {}
        for value in probe.graph.input:
            if value.name in initializers:
                continue
            ttype = value.type.tensor_type
            dtype = onnx_mod.helper.tensor_dtype_to_np_dtype(ttype.elem_type)
            feeds[value.name] = np.zeros([d.dim_value for d in ttype.shape.dim], dtype=dtype)
        wanted = sorted(names)
        arrays = session.run(wanted, feeds)
    except Exception as exc:  # any failure just leaves those ops uncounted
        logger.warning("could not run the model to resolve shapes (%s): some MACs stay uncounted", exc)
        return {}
    return {name: tuple(int(d) for d in np.shape(arr)) for name, arr in zip(wanted, arrays, strict=True)}


def _load(onnx_path: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Load (without external weight data: only dims are needed) or copy a model."""
    onnx_mod: Any = require("onnx", "Counting parameters and MACs of an ONNX graph", "onnx>=1.16")
    if isinstance(onnx_path, onnx_mod.ModelProto):
        model = onnx_mod.ModelProto()
        model.CopyFrom(onnx_path)
        return model
    path = Path(onnx_path)
    if not path.is_file():
        raise InputError(f"ONNX file not found: {path}")
    try:
        return onnx_mod.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise InputError(f"{path} is not a readable ONNX model: {exc}") from exc


def _fix_input_shapes(
    graph: onnx.GraphProto, input_shapes: Mapping[str, tuple[int, ...]], axes: Mapping[str, int]
) -> dict[str, list[int]]:
    """Overwrite graph input dims with concrete values; returns the shapes used."""
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise InputError(f"input_shapes names {unknown} that the graph does not have; its inputs are {names}")
    used: dict[str, list[int]] = {}
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        given = input_shapes.get(value.name)
        if given is not None:
            given = tuple(int(d) for d in given)
            if len(dims) and len(dims) != len(given):
                raise InputError(
                    f"input {value.name!r} has rank {len(dims)} but input_shapes gives {given} "
                    f"(rank {len(given)})"
                )
            for i, (dim, want) in enumerate(zip(dims, given, strict=False)):
                if dim.HasField("dim_value") and dim.dim_value not in (0, want):
                    raise InputError(
                        f"input {value.name!r} axis {i} is fixed at {dim.dim_value} in the graph, "
                        f"but input_shapes gives {want}"
                    )
            shape = list(given)
        else:
            shape = []
            for i, dim in enumerate(dims):
                if dim.HasField("dim_value"):
                    shape.append(dim.dim_value)
                elif dim.dim_param in axes:
                    shape.append(int(axes[dim.dim_param]))
                else:
                    axis = dim.dim_param or f"axis {i}"
                    raise InputError(
                        f"input {value.name!r} has dynamic dimension {axis!r}: give its concrete shape in "
                        f"input_shapes (e.g. {{'{value.name}': (1, ...)}}) or the axis value in axes"
                    )
        tensor_shape = value.type.tensor_type.shape
        tensor_shape.ClearField("dim")
        for d in shape:
            tensor_shape.dim.add().dim_value = d
        used[value.name] = shape
    return used


def _shape_table(graph: onnx.GraphProto) -> dict[str, tuple[int, ...] | None]:
    """Name -> concrete dims (None where any dim is unknown) for every typed value in the graph."""
    table: dict[str, tuple[int, ...] | None] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        ttype = value.type.tensor_type
        if not ttype.HasField("shape"):
            continue
        dims = ttype.shape.dim
        table[value.name] = (
            tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
        )
    for init in graph.initializer:
        table[init.name] = tuple(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    table[node.output[0]] = tuple(attr.t.dims)
    return table


def _weight_like(elem_type: int) -> bool:
    """Whether a tensor element type can hold weights (floats, 8- and 4-bit integers)."""
    onnx_mod: Any = require("onnx", "Counting parameters of an ONNX graph", "onnx>=1.16")
    tp = onnx_mod.TensorProto
    kinds = {tp.FLOAT, tp.FLOAT16, tp.DOUBLE, tp.BFLOAT16, tp.INT8, tp.UINT8}
    kinds |= {getattr(tp, n) for n in ("INT4", "UINT4", "FLOAT8E4M3FN", "FLOAT8E5M2") if hasattr(tp, n)}
    return elem_type in kinds


def _count_params(graph: onnx.GraphProto) -> int:
    """Elements of weight tensors (initializers and Constant values); qparams and scalars excluded."""
    qparam_only: dict[str, bool] = {}
    for node in graph.node:
        skip = _QPARAM_INPUTS.get(node.op_type, set())
        for i, name in enumerate(node.input):
            is_qparam = i in skip
            qparam_only[name] = qparam_only.get(name, True) and is_qparam
    total = 0
    for init in graph.initializer:
        if init.dims and _weight_like(init.data_type) and not qparam_only.get(init.name, False):
            total += math.prod(init.dims)
    for node in graph.node:
        if node.op_type != "Constant" or not node.output or qparam_only.get(node.output[0], False):
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.t.dims and _weight_like(attr.t.data_type):
                total += math.prod(attr.t.dims)
            elif attr.name == "value_floats":
                total += len(attr.floats)
    return total


def _node_macs(node: onnx.NodeProto, shapes: Mapping[str, tuple[int, ...] | None]) -> int | None:
    """MACs of one node, or None when a shape it needs is unknown."""

    def dims(index: int, outputs: bool = False) -> tuple[int, ...] | None:
        names = node.output if outputs else node.input
        return shapes.get(names[index]) if index < len(names) and names[index] else None

    op = node.op_type
    out = dims(0, outputs=True)
    if op in _CONV_WEIGHT:
        weight = dims(_CONV_WEIGHT[op])
        if out is None or weight is None:
            return None
        return math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":
        x, weight = dims(0), dims(1)
        if x is None or weight is None:
            return None
        return math.prod(x) * math.prod(weight[1:])
    if op in _MATMUL_OPS:
        a = dims(0)
        if out is None or a is None or not a:
            return None
        return math.prod(out) * a[-1]
    if op == "Gemm":
        a = dims(0)
        if out is None or a is None or len(a) != 2:
            return None
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[1])
    return 0


def _counted_graph(
    onnx_path: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, tuple[int, ...]],
    axes: Mapping[str, int] | None,
    runtime_fallback: bool,
) -> tuple[onnx.GraphProto, dict[str, tuple[int, ...] | None], dict[str, list[int]]]:
    """The shape-inferred graph, its value shapes and the input shapes used."""
    onnx_mod: Any = require("onnx", "Counting parameters and MACs of an ONNX graph", "onnx>=1.16")
    model = _load(onnx_path)
    if len(model.functions):
        model = onnx_mod.inliner.inline_local_functions(model)
    used = _fix_input_shapes(model.graph, input_shapes, axes or {})
    # Stale symbolic shapes written by the exporter would only get in the way of inference.
    del model.graph.value_info[:]
    try:
        inferred = onnx_mod.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError
        raise InputError(f"ONNX shape inference failed at input shapes {used}: {exc}") from exc
    graph = inferred.graph
    shapes = _shape_table(graph)
    counted = [n for n in graph.node if n.op_type in _COUNTED_OPS]
    unresolved = {
        name
        for node in counted
        for name in (*node.input[:4], *node.output[:1])
        if name and shapes.get(name) is None
    }
    if unresolved and runtime_fallback:
        base_dir = None if isinstance(onnx_path, onnx_mod.ModelProto) else Path(onnx_path).parent
        logger.info("static shape inference left %d values unknown: running the model once", len(unresolved))
        shapes.update(_runtime_shapes(model, unresolved, base_dir))
    return graph, shapes, used


def node_macs(
    onnx_path: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, tuple[int, ...]],
    *,
    axes: Mapping[str, int] | None = None,
    runtime_fallback: bool = True,
) -> dict[str, int | None]:
    """MACs of every counted node (Conv, MatMul, Gemm, ...), keyed by its first output; None where unknown."""
    graph, shapes, _ = _counted_graph(onnx_path, input_shapes, axes, runtime_fallback)
    return {n.output[0]: _node_macs(n, shapes) for n in graph.node if n.op_type in _COUNTED_OPS and n.output}


def count_cost(
    onnx_path: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, tuple[int, ...]],
    *,
    axes: Mapping[str, int] | None = None,
    runtime_fallback: bool = True,
) -> Cost:
    """Parameters and MACs of an ONNX model with its inputs fixed to `input_shapes`.

    Inputs not named in `input_shapes` keep their static dims; named dynamic axes (e.g.
    "batch", "seq") can instead be resolved through `axes`. Shapes come from ONNX shape
    inference; where it cannot resolve a counted op and `runtime_fallback` is on, the model
    runs once on zeros with onnxruntime (CPU) to observe them.
    """
    graph, shapes, used = _counted_graph(onnx_path, input_shapes, axes, runtime_fallback)
    producers = {out: node.op_type for node in graph.node for out in node.output}

    by_op: defaultdict[str, int] = defaultdict(int)
    uncounted: Counter[str] = Counter()
    quantized = 0
    for node in graph.node:
        op = node.op_type
        if op in _HEAVY_UNCOUNTED:
            uncounted[op] += 1
            continue
        if op not in _COUNTED_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            logger.warning("cannot count MACs of %s node %r: an input/output shape is unknown", op, node.name)
            uncounted[op] += 1
            continue
        by_op[op] += macs
        qdq = (
            op in _QDQ_CANDIDATES
            and len(node.input) > 1
            and all(producers.get(name) == "DequantizeLinear" for name in node.input[:2])
        )
        if op in _INT8_OPS or qdq:
            quantized += macs
    if uncounted:
        logger.info("ops whose MACs are not counted: %s", dict(uncounted))
    return Cost(
        params=_count_params(graph),
        macs=sum(by_op.values()),
        by_op=dict(by_op),
        quantized_macs=quantized,
        uncounted=dict(uncounted),
        input_shapes=used,
    )
