"""Sensitivity search: how many leading layers of a conv net the int8 graph keeps in float.

Why: the noise that quantizing the first activations adds (the stem's full-resolution output) runs
through every later layer. On the edge preset's EfficientNet-Lite0 (GPTQ weights), keeping the stem and
the first few layers float — a small share of the MACs — cut the embedding error markedly for a small
latency cost, while keeping any single later block float barely changed it (figures: README.md).

The search quantizes with the first k weighted layers float, for every k whose layers hold at most
`max_macs` of the component's multiply-adds (as `mmedge.bench.costmodel` counts them). It measures each
candidate's output error against fp32 on the calibration feeds and keeps the smallest k within
`TOLERANCE` of the best error. Float layers keep their original weights; every node before the first
quantized layer stays float too, so no Q/DQ pair is left between two float layers.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mmedge.bench.costmodel import node_macs
from mmedge.errors import InputError
from mmedge.eval.compare import compare
from mmedge.quantize.weight_rounding import WeightedLayer, probe_session

log = logging.getLogger(__name__)

TOLERANCE = 1.05  # the smallest prefix whose error is within 5 % of the best candidate's wins

Feed = dict[str, np.ndarray]
QuantizeFn = Callable[[Path, Path, list[str], dict[str, Any]], None]  # (source, dst, exclude, overrides)


def layer_macs(model: onnx.ModelProto, layers: list[WeightedLayer], feed: Feed) -> list[int]:
    """Multiply-adds of each layer at the shapes of `feed` (the cost model's count)."""
    counts = node_macs(model, {name: tuple(value.shape) for name, value in feed.items()})
    unknown = [layer.node.name for layer in layers if counts.get(str(layer.node.output[0])) is None]
    if unknown:
        raise InputError(f"cannot count the MACs of layer(s) {unknown}: their shapes are unknown")
    return [int(counts[str(layer.node.output[0])] or 0) for layer in layers]


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
    """Mean |candidate − reference| of the first output over all `feeds` (`reference`: the fp32 outputs)."""
    got = np.concatenate(first_outputs(candidate, feeds, threads))
    return compare({"output": np.concatenate(reference)}, {"output": got})["output"].mean_abs_diff


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
    macs = layer_macs(base, layers, feeds[0])
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
