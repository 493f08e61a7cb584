"""`mmedge inspect`: what each artifact of a bundle is — precision, size, ops, Q/DQ, dtypes, parity, hash."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mmedge.bundle import Artifact, Bundle
from mmedge.errors import MissingDependencyError

log = logging.getLogger(__name__)
TOP_OPS = 6


def graph_summary(path: Path) -> dict[str, Any]:
    """Op counts, Q/DQ count and initializer dtype mix (count and bytes) of one ONNX file."""
    try:
        import onnx
        from onnx import TensorProto
    except ImportError as exc:
        raise MissingDependencyError("onnx", "mmedge inspect") from exc
    model = onnx.load(str(path))
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
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)}


def _typed_bytes(init: Any) -> int:
    """Size of an initializer stored in typed fields rather than raw_data."""
    import numpy as np
    from onnx import numpy_helper

    return int(np.asarray(numpy_helper.to_array(init)).nbytes)


def artifact_summary(bundle: Bundle, precision: str, art: Artifact) -> dict[str, Any]:
    """One artifact's row: file facts, graph summary, parity figures, main settings."""
    row: dict[str, Any] = {"precision": precision, "file": art.file, "bytes": art.bytes,
                           "sha256": art.sha256[:12], "parity": art.parity}
    settings = art.settings
    scheme = settings.get("scheme")
    row["scheme"] = scheme.get("name") if isinstance(scheme, dict) else settings.get("converter", "")
    if "target" in settings:
        row["target"] = settings["target"]
    if isinstance(settings.get("weight_rounding"), dict):
        row["weight_rounding"] = settings["weight_rounding"].get("method")
    path = bundle.path(art.file)
    if path.suffix == ".onnx" and path.is_file():
        row.update(graph_summary(path))
    return row


def inspect_bundle(bundle: Bundle | str | Path) -> dict[str, Any]:
    """Per component, per precision: the artifact summaries (hashes verified on load)."""
    bundle = Bundle.coerce(bundle)
    return {
        "bundle": str(bundle.root), "name": bundle.name, "modalities": bundle.modalities,
        "components": {name: {"kind": comp.kind,
                              "artifacts": [artifact_summary(bundle, p, a) for p, a in
                                            comp.artifacts.items()]}
                       for name, comp in bundle.components.items()},
        "engines": sorted(bundle.engines),
        "auto_precision": bundle.provenance.get("auto_precision", {}).get("choice"),
    }
