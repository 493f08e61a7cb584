"""Sensitivity search: how many leading layers of a conv net the int8 graph keeps in float.

Why: the noise that quantizing the first activations adds (the stem's full-resolution output) runs
through every later layer. On the edge preset's EfficientNet-Lite0 (GPTQ weights), quantizing everything
gave an embedding mean |Δ| of 0.096–0.098. Keeping the stem and the first depthwise conv float (3.8 % of
the MACs) brought it to 0.074–0.077, and the first 10 layers (22.5 %) to 0.053, at +0.19 ms (1.60 → 1.78 ms)
for that encoder. Keeping any single later block float changed it by under 6 %.

The search quantizes with the first k weighted layers float, for every k whose layers hold at most
`max_macs` of the component's multiply-adds. It measures each candidate's output error against fp32
on the calibration feeds and keeps the smallest k within `TOLERANCE` of the best error. Float layers
keep their original weights; every node before the first quantized layer stays float too, so no Q/DQ
pair is left between two float layers.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mmedge.errors import InputError
from mmedge.quantize.weight_rounding import WeightedLayer, probe_session

log = logging.getLogger(__name__)

TOLERANCE = 1.05  # the smallest prefix whose error is within 5 % of the best candidate's wins

Feed = dict[str, np.ndarray]
QuantizeFn = Callable[[Path, Path, list[str], dict[str, Any]], None]  # (source, dst, exclude, overrides)


def layer_macs(model: onnx.ModelProto, layers: list[WeightedLayer], feed: Feed, threads: int | None) -> list[int]:
    """Multiply-adds per sample of each layer, from its weight size and real output shape."""
    outputs = [str(layer.node.output[0]) for layer in layers]
    shapes = [v.shape for v in probe_session(model, outputs, threads).run(outputs, feed)]
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    macs = []
    for layer, shape in zip(layers, shapes, strict=True):
        positions = shape[2:] if layer.node.op_type == "Conv" else shape[1:-1]
        macs.append(sizes[layer.weight] * int(np.prod(positions)))
    return macs


def prefix_nodes(model: onnx.ModelProto, layers: list[WeightedLayer], k: int) -> list[str]:
    """Names of the nodes (graph order) before the (k+1)-th weighted layer; all of them when k = len."""
    if k == 0:
        return []
    stop = layers[k].node.name if k < len(layers) else None
    names = []
    for node in model.graph.node:
        if node.name == stop:
            break
        names.append(node.name)
    return names


def require_share(max_macs: float) -> None:
    """InputError unless `max_macs` is a share of the MACs, in [0, 1]."""
    if not 0.0 <= max_macs <= 1.0:
        raise InputError(f"--max-float-macs must be in [0, 1], got {max_macs}")


def restore_weights(rounded: onnx.ModelProto, original: onnx.ModelProto, layers: list[WeightedLayer]) -> None:
    """Put `original`'s weights of `layers` back into `rounded` (they run in float)."""
    source = {t.name: t for t in original.graph.initializer}
    weights = {layer.weight for layer in layers}
    for init in rounded.graph.initializer:
        if init.name in weights:
            init.CopyFrom(source[init.name])


def first_outputs(model: Path, feeds: list[Feed], threads: int | None) -> list[np.ndarray]:
    """The model's first output on each feed."""
    session = probe_session(onnx.load(str(model)), [], threads)
    name = session.get_outputs()[0].name
    return [session.run([name], f)[0] for f in feeds]


def output_error(reference: list[np.ndarray], candidate: Path, feeds: list[Feed], threads: int | None) -> float:
    """Mean |candidate − reference| of the first output over `feeds` (`reference`: the fp32 outputs)."""
    got = first_outputs(candidate, feeds, threads)
    return float(np.mean([np.abs(g - r).mean() for g, r in zip(got, reference, strict=True)]))


def candidates(macs: list[int], max_macs: float) -> list[int]:
    """Prefix lengths k whose first k layers hold at most `max_macs` of all multiply-adds."""
    total, ks = sum(macs) or 1, [0]
    for k in range(1, len(macs)):
        if sum(macs[:k]) / total > max_macs:
            break
        ks.append(k)
    return ks


def search(original: Path, rounded: Path, dst: Path, work: Path, layers: list[WeightedLayer],
           exclude: list[str], overrides: dict[str, Any], feeds: list[Feed], quantize: QuantizeFn,
           max_macs: float, threads: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """Quantize into `dst` with the chosen float prefix (candidates built in `work`); return
    (all nodes kept float, summary for the settings)."""
    base, source = onnx.load(str(original)), onnx.load(str(rounded))
    macs = layer_macs(base, layers, feeds[0], threads)
    reference = first_outputs(original, feeds, threads)  # fp32, computed once for every candidate
    errors: dict[int, float] = {}
    for k in candidates(macs, max_macs):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        restore_weights(model, base, layers[:k])
        onnx.save(model, str(work / f"k{k}.src.onnx"))
        kept = {layer.weight for layer in layers[:k]}
        quantize(work / f"k{k}.src.onnx", work / f"k{k}.onnx", sorted({*exclude, *prefix_nodes(base, layers, k)}),
                 {n: v for n, v in overrides.items() if n not in kept})
        errors[k] = output_error(reference, work / f"k{k}.onnx", feeds, threads)
    best = min(errors.values())
    chosen = min(k for k, e in errors.items() if e <= TOLERANCE * best)
    shutil.copyfile(work / f"k{chosen}.onnx", dst)
    prefix = prefix_nodes(base, layers, chosen)
    fraction = round(sum(macs[:chosen]) / (sum(macs) or 1), 4)
    summary: dict[str, Any] = {"layers": chosen, "nodes": len(prefix), "macs_fraction": fraction,
               "mean_abs_error_by_layers": {str(k): round(e, 6) for k, e in errors.items()},
               "max_macs_fraction": max_macs, "tolerance": TOLERANCE}
    log.info("float prefix: %d layer(s) (%.1f %% of MACs); error by prefix %s", chosen,
             100 * fraction, summary["mean_abs_error_by_layers"])
    return sorted({*exclude, *prefix}), summary
