"""What every ONNX artifact says about itself: metadata_props, shape profiles, and a clean opset list.

Outside tools (Netron, Polygraphy, trtexec, onnxruntime's `modelmeta`) see only the .onnx file, so
each artifact carries its component, modality, precision, labels and min/opt/max input shapes as
`metadata_props` under the `mmedge.` prefix. Stamping happens before the artifact is hashed into
bundle.json, so the recorded sha256 is that of the final bytes. onnx is imported inside functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.errors import BundleError
from mmedge.io import atomic_path
from mmedge.specs import HEAD, TensorSpec

if TYPE_CHECKING:
    from mmedge.bundle import Bundle

log = logging.getLogger(__name__)
PREFIX = "mmedge."
KEEP_DOMAINS = frozenset({"", "ai.onnx"})  # the default domain stays declared even if unused
Shape = tuple[int, ...]
TRT_PRECISIONS = ("fp32", "fp16", "int8-trt")  # the artifacts TensorRT builds (plain int8 is ONNX Runtime's flavour)


def profile_shapes(specs: Iterable[TensorSpec]) -> dict[str, tuple[Shape, Shape, Shape]]:
    """{input: (min, opt, max) shape} from each spec's named-axis ranges (BundleError if an axis has none)."""
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for spec in specs:
        dims: list[tuple[int, int, int]] = []
        for d in spec.shape:
            if isinstance(d, int):
                dims.append((d, d, d))
            elif d in spec.ranges:
                lo, mid, hi = spec.ranges[d]
                dims.append((int(lo), int(mid), int(hi)))
            else:
                raise BundleError(f"input '{spec.name}': dynamic axis '{d}' has no min/opt/max range in bundle.json")
        out[spec.name] = tuple(tuple(x[i] for x in dims) for i in range(3))  # type: ignore[assignment]
    return out


def shape_text(shape: Iterable[int]) -> str:
    """trtexec's shape syntax: (1, 16) -> '1x16'."""
    return "x".join(str(int(d)) for d in shape)


def trtexec_shape_flags(specs: Iterable[TensorSpec]) -> list[str]:
    """['--minShapes=a:1x1,b:1x1', '--optShapes=…', '--maxShapes=…'] for the inputs' ranges."""
    profile = profile_shapes(specs)
    return [f"--{flag}=" + ",".join(f"{name}:{shape_text(shapes[i])}" for name, shapes in profile.items())
            for i, flag in enumerate(("minShapes", "optShapes", "maxShapes"))]


def artifact_metadata(bundle: Bundle, component: str, precision: str) -> dict[str, str]:
    """The `mmedge.*` metadata_props of one artifact (all values are strings, JSON where structured)."""
    from mmedge import __version__

    comp = bundle.components[component]
    profile = profile_shapes(comp.inputs)
    shapes = {name: {"min": list(s[0]), "opt": list(s[1]), "max": list(s[2])} for name, s in profile.items()}
    return {
        PREFIX + "model": bundle.name,
        PREFIX + "component": component,
        PREFIX + "kind": comp.kind,
        PREFIX + "modality": ",".join(bundle.modalities) if component == HEAD else component,
        PREFIX + "precision": precision,
        PREFIX + "labels": json.dumps(list(bundle.labels)),
        PREFIX + "input_shapes": json.dumps(shapes),
        PREFIX + "trtexec_shapes": " ".join(trtexec_shape_flags(comp.inputs)),
        PREFIX + "version": __version__,
    }


def _used_domains(model: Any) -> set[str]:
    """Op domains used by any node, in the graph, its subgraphs and local functions."""
    used: set[str] = set()

    def walk(nodes: Iterable[Any]) -> None:
        for node in nodes:
            used.add(node.domain or "")
            for attr in node.attribute:
                for graph in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                    walk(graph.node)

    walk(model.graph.node)
    for function in model.functions:
        used.add(function.domain or "")
        walk(function.node)
    return used


def prune_opset_imports(model: Any) -> list[str]:
    """Drop declared opset domains that no node uses (never the default domain); the removed domains."""
    used = _used_domains(model)
    keep = [o for o in model.opset_import if o.domain in KEEP_DOMAINS or o.domain in used]
    removed = [o.domain for o in model.opset_import if o not in keep]
    if removed:
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return removed


def set_metadata(model: Any, metadata: dict[str, str]) -> None:
    """Set `metadata` in model.metadata_props, replacing entries of the same keys and keeping the others."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def stamp(path: str | Path, metadata: dict[str, str]) -> list[str]:
    """Rewrite the ONNX file at `path` (atomically) with `metadata` set and unused opset imports removed."""
    import onnx

    target = Path(path)
    model = onnx.load(str(target))
    removed = prune_opset_imports(model)
    set_metadata(model, metadata)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    if removed:
        log.info("%s: removed unused opset imports %s", target.name, ", ".join(removed))
    return removed


def stamp_artifact(path: str | Path, bundle: Bundle, component: str, precision: str) -> list[str]:
    """`stamp` with the artifact metadata of (component, precision); call before the file is hashed."""
    return stamp(path, artifact_metadata(bundle, component, precision))
