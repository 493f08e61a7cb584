"""`mmedge inspect`: what each artifact of a bundle is — precision, size, ops, Q/DQ, dtypes, parity, hash."""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from mmedge.bundle import SCHEMA_VERSION, Artifact, Bundle
from mmedge.bundle_checks import io_problems
from mmedge.errors import MissingDependencyError
from mmedge.exporters.onnx_meta import PREFIX as META_PREFIX
from mmedge.exporters.onnx_meta import TRT_PRECISIONS, trtexec_shape_flags

log = logging.getLogger(__name__)
TOP_OPS = 6


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("onnx", "mmedge inspect") from exc
    return onnx


def graph_io(model: Any) -> tuple[list[tuple[str, str, list[int | str | None]]], ...]:
    """(name, dtype, dims) of an ONNX model's real inputs (initializers excluded) and outputs."""
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}

    def describe(values: Any) -> list[tuple[str, str, list[int | str | None]]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
            out.append((v.name, helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?", dims))
        return out

    return describe(v for v in model.graph.input if v.name not in inits), describe(model.graph.output)


def graph_summary(path: Path, model: Any = None) -> dict[str, Any]:
    """Op counts, Q/DQ count and initializer dtype mix (count and bytes) of one ONNX file."""
    onnx = _onnx()
    from onnx import TensorProto

    model = model if model is not None else onnx.load(str(path))
    ops = Counter(n.op_type for n in model.graph.node)
    dtypes: dict[str, dict[str, int]] = {}
    for init in model.graph.initializer:
        name = TensorProto.DataType.Name(init.data_type).lower()
        entry = dtypes.setdefault(name, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += len(init.raw_data) if init.raw_data else _typed_bytes(init)
    return {"nodes": sum(ops.values()), "top_ops": dict(ops.most_common(TOP_OPS)),
            "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
            "integer_ops": sum(v for k, v in ops.items() if "Integer" in k or k.startswith("QLinear")),
            "initializer_dtypes": dtypes,
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
            "opset_domains": sorted(o.domain or "ai.onnx" for o in model.opset_import),
            "metadata": {p.key: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}}


def _typed_bytes(init: Any) -> int:
    """Size of an initializer stored in typed fields rather than raw_data."""
    import numpy as np
    from onnx import numpy_helper

    return int(np.asarray(numpy_helper.to_array(init)).nbytes)


def artifact_summary(bundle: Bundle, precision: str, art: Artifact, component: str | None = None) -> dict[str, Any]:
    """One artifact's row: file facts, graph summary, I/O problems vs bundle.json, parity figures, main settings."""
    row: dict[str, Any] = {"precision": precision, "file": art.file, "bytes": art.bytes,
                           "sha256": art.sha256[:12], "parity": art.parity}
    settings = art.settings
    scheme = settings.get("scheme")
    row["scheme"] = scheme.get("name") if isinstance(scheme, dict) else settings.get("converter", "")
    if "target" in settings:
        row["target"] = settings["target"]
    if isinstance(settings.get("weight_rounding"), dict):
        row["weight_rounding"] = settings["weight_rounding"].get("method")
    name = component or next(n for n, c in bundle.components.items() if art in c.artifacts.values())
    path = bundle.artifact_path(name, precision)  # confined and sha256-checked
    if path.suffix == ".onnx":
        model = _onnx().load(str(path))
        row.update(graph_summary(path, model))
        comp = bundle.components[name]
        row["problems"] = io_problems(name, art.file, comp.inputs, comp.outputs, *graph_io(model))
    return row


def trtexec_commands(bundle: Bundle) -> dict[str, dict[str, str]]:
    """Per component, per TensorRT-buildable precision: a trtexec build line with the bundle's min/opt/max shapes."""
    out: dict[str, dict[str, str]] = {}
    for name, comp in bundle.components.items():
        flags = " ".join(trtexec_shape_flags(comp.inputs))
        out[name] = {key: f"trtexec --onnx={shlex.quote(str(bundle.path(comp.artifacts[key].file)))} --stronglyTyped "
                          f"{flags}" for key in TRT_PRECISIONS if key in comp.artifacts}
    return out


def inspect_bundle(bundle: Bundle | str | Path) -> dict[str, Any]:
    """Per component, per precision: the artifact summaries; every recorded file hashed, every graph checked."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, legacy=True)  # read-only: schema 1 too
    bundle.verify()
    components: dict[str, dict[str, Any]] = {name: {"kind": comp.kind,
                         "artifacts": [artifact_summary(bundle, p, a, name) for p, a in comp.artifacts.items()]}
                  for name, comp in bundle.components.items()}
    return {
        "bundle": str(bundle.root), "name": bundle.name, "modalities": bundle.modalities,
        "schema_version": bundle.schema_version, "components": components,
        "engines": sorted(bundle.engines),
        "trtexec": trtexec_commands(bundle),
        "auto_precision": bundle.provenance.get("auto_precision", {}).get("choice"),
        "unverified": list(bundle.unhashed),
        "needs_migration": bundle.schema_version < SCHEMA_VERSION,  # schema 1: `mmedge migrate` before use
        "problems": [p for comp in components.values() for row in comp["artifacts"] for p in row.get("problems", [])],
    }
