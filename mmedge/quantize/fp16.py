"""FP16 pass: float16 weights and math, float32 graph inputs/outputs, an explicit fp32 block list.

Block list (kept in float32, documented here because it is a numerical contract):

* op types in ``FP32_OP_TYPES``: Softmax (exp of large logits overflows fp16, and masked scores use
  −1e4…−65504), LayerNormalization / GroupNormalization / InstanceNormalization (mean and variance of
  wide rows lose precision and the variance can overflow), Log (log of small positives), plus
  onnxruntime's default list of ops without fp16 support.
* the audio front-end, found structurally as every node upstream of a ``Log`` (the DFT Conv1d,
  the power ``real² + imag²`` — up to ~1e4 for a full-scale tone, the mel MatMul — sums of those,
  close to the fp16 maximum 65504 — and the ``+1e-10`` floor, which underflows fp16), plus the
  per-clip normalization between the ``Log`` and the first learned layer (whole-clip statistics);
* hand-written variance statistics: a ``ReduceMean`` fed by a ``Pow`` (decomposed LayerNorm),
  with that ``Pow``.

The converter is ``onnxruntime.transformers.float16.convert_float_to_float16`` (shipped with the
onnxruntime we already depend on). It casts fp32→fp16→fp32 between two consecutive blocked nodes;
``fold_cast_round_trips`` removes those pairs so blocked regions really compute in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from mmedge.errors import ExportError
from mmedge.io import atomic_path

log = logging.getLogger(__name__)

FP32_OP_TYPES: tuple[str, ...] = ("Softmax", "LayerNormalization", "GroupNormalization",
                                  "InstanceNormalization", "Log")
CONVERTER = "onnxruntime.transformers.float16"


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """{tensor name: the node that outputs it}."""
    return {out: node for node in model.graph.node for out in node.output}


def consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """{tensor name: nodes that read it}."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def upstream_nodes(model: onnx.ModelProto, roots: Iterable[onnx.NodeProto]) -> list[str]:
    """Names of `roots` and every node they transitively depend on."""
    made_by = producers(model)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(made_by[name] for name in node.input if name in made_by)
    return [n.name for n in model.graph.node if n.name in seen]


LEARNED_OPS: tuple[str, ...] = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # where the front-end ends


def downstream_until_learned(model: onnx.ModelProto, roots: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Nodes fed (transitively) by `roots`, stopping at the first learned layer (Conv/MatMul/Gemm) on each path."""
    readers = consumers(model)
    seen: dict[str, onnx.NodeProto] = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        for out in node.output:
            for reader in readers.get(out, []):
                if reader.op_type not in LEARNED_OPS and reader.name not in seen:
                    seen[reader.name] = reader
                    stack.append(reader)
    return list(seen.values())


def frontend_nodes(model: onnx.ModelProto) -> list[str]:
    """The in-graph audio front-end: every node up to a Log, and the per-clip normalization after it.

    That is: the Log, its ancestors, the parameter-free nodes it feeds up to the first learned layer
    (mean/std statistics over a whole clip: sums that overflow fp16 and must not be int8), and their
    constants (empty if there is no Log).
    """
    logs = [n for n in model.graph.node if n.op_type == "Log"]
    return upstream_nodes(model, logs + downstream_until_learned(model, logs))


def variance_nodes(model: onnx.ModelProto) -> list[str]:
    """ReduceMean nodes fed by a Pow (hand-written variance), and those Pow nodes."""
    made_by = producers(model)
    names: list[str] = []
    for node in model.graph.node:
        src = made_by.get(node.input[0]) if node.op_type == "ReduceMean" and node.input else None
        if src is not None and src.op_type == "Pow":
            names += [src.name, node.name]
    return names


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (block lists are by node name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def block_list(model: onnx.ModelProto) -> list[str]:
    """Node names to keep in float32 beyond the op-type list (front-end and variance statistics)."""
    return sorted(set(frontend_nodes(model)) | set(variance_nodes(model)))


def _dtypes(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every graph input, value_info and initializer."""
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def fold_cast_round_trips(model: onnx.ModelProto) -> int:
    """Remove float32→float16→float32 Cast pairs (they round blocked regions through fp16); count removed."""
    types, made_by = _dtypes(model), producers(model)
    outputs = {o.name for o in model.graph.output}
    rewire: dict[str, str] = {}
    dead: set[str] = set()
    for node in model.graph.node:
        if _cast_to(node) != TensorProto.FLOAT or node.output[0] in outputs:
            continue
        first = made_by.get(node.input[0])
        if first is None or _cast_to(first) != TensorProto.FLOAT16:
            continue
        if types.get(first.input[0]) == TensorProto.FLOAT:
            rewire[node.output[0]] = first.input[0]
            dead.add(node.name)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rewire:
                node.input[i] = rewire[name]
    kept = [n for n in model.graph.node if n.name not in dead]
    used = {name for n in kept for name in n.input} | outputs
    kept = [n for n in kept if not (_cast_to(n) == TensorProto.FLOAT16 and n.output[0] not in used)]
    removed = len(model.graph.node) - len(kept)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    live = {name for n in kept for name in n.output}
    stale = [v for v in model.graph.value_info if v.name not in live]
    for v in stale:
        model.graph.value_info.remove(v)
    return removed


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder nodes so every input is produced before use (the converter appends its Casts)."""
    ready = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    pending, ordered = list(model.graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ExportError(f"graph has a cycle or a dangling input near node '{rest[0].name}'")
        for node in done:
            ready.update(node.output)
        ordered += done
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Convert a float32 model in memory; return it and the settings to record."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    ensure_node_names(model)
    nodes = block_list(model)
    ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OP_TYPES))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=ops, node_block_list=nodes)
    folded = fold_cast_round_trips(converted)
    topological_sort(converted)
    present = {n.op_type for n in model.graph.node}
    settings = {"converter": CONVERTER, "keep_io_types": True,
                "fp32_op_types": [o for o in FP32_OP_TYPES if o in present], "fp32_nodes": nodes,
                "cast_round_trips_removed": folded}
    return converted, settings


def convert_fp16(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the fp16 version of `src` to `dst` atomically (checked by onnx.checker); return its settings."""
    model = onnx.load(str(src))
    try:
        converted, settings = to_fp16(model)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:  # converter/checker raise many types; one clear message
        raise ExportError(f"fp16 conversion of {Path(src).name} failed: {type(exc).__name__}: {exc}") from exc
    with atomic_path(dst) as tmp:
        onnx.save(converted, str(tmp))
    log.info("fp16: %s → %s (%d fp32 nodes)", Path(src).name, Path(dst).name, len(settings["fp32_nodes"]))
    return settings
