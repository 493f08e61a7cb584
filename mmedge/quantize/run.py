"""`mmedge quantize`: add fp16 / int8 artifacts per component to a bundle, with parity on real samples."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bundle import Bundle
from mmedge.errors import ExportError, InputError
from mmedge.eval.compare import compare
from mmedge.exporters.onnx_meta import stamp_artifact
from mmedge.progress import track
from mmedge.quantize.calibration import ComponentFeeds, component_feeds, data_spec, load_samples
from mmedge.quantize.float_prefix import require_share
from mmedge.quantize.fp16 import convert_fp16
from mmedge.quantize.int8 import METHODS, TARGETS, quantize_int8
from mmedge.quantize.qdq_check import check_trt_qdq
from mmedge.quantize.weight_rounding import require_rounding
from mmedge.transaction import Transaction, update

log = logging.getLogger(__name__)
QUANT_PRECISIONS: tuple[str, ...] = ("fp16", "int8")
ProgressFn = Callable[[str], None]


@dataclass
class QuantizeOptions:
    """What `mmedge quantize` was asked for."""

    precision: str
    target: str = "cpu"
    calib: str | None = None
    samples: int = 128
    method: str = "minmax"
    components: list[str] | None = None
    parity_samples: int = 64
    threads: int | None = None
    rounding: str = "gptq"
    max_float_macs: float | None = None  # None: the scheme's (0.5 for conv nets on cpu)

    def key(self) -> str:
        """Precision key in the bundle: fp16, int8 (cpu flavour) or int8-trt."""
        return "int8-trt" if self.precision == "int8" and self.target == "tensorrt" else self.precision


@dataclass
class QuantizeResult:
    """One artifact written."""

    component: str
    precision: str
    file: str
    bytes: int
    parity: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"component": self.component, "precision": self.precision, "file": self.file,
                "bytes": self.bytes, "parity": self.parity, "settings": self.settings}


def validate(bundle: Bundle, opts: QuantizeOptions) -> list[str]:
    """Check the options against the bundle; return the components to quantize."""
    if opts.precision not in QUANT_PRECISIONS:
        raise InputError(f"unknown precision '{opts.precision}' for quantize "
                         f"(choose from: {', '.join(QUANT_PRECISIONS)})")
    if opts.target not in TARGETS:
        raise InputError(f"unknown target '{opts.target}' (choose from: {', '.join(TARGETS)})")
    if opts.method not in METHODS:
        raise InputError(f"unknown calibration method '{opts.method}' (choose from: {', '.join(METHODS)})")
    require_rounding(opts.rounding)
    if opts.max_float_macs is not None:
        require_share(opts.max_float_macs)
    if opts.max_float_macs is not None and opts.precision != "int8":
        raise InputError("--max-float-macs applies to --precision int8 only")
    if opts.max_float_macs and opts.target != "cpu":
        raise InputError("--max-float-macs applies to --target cpu only (TensorRT's flavour is all int8)")
    if opts.precision == "fp16" and opts.target != "cpu":
        raise InputError("--target applies to int8 only; fp16 is one ONNX for every runtime")
    if opts.samples < 1 or opts.parity_samples < 1:
        raise InputError("--samples must be at least 1")
    names = opts.components or list(bundle.components)
    unknown = [c for c in names if c not in bundle.components]
    if unknown:
        raise InputError(f"unknown component(s) {', '.join(unknown)} "
                         f"(bundle has: {', '.join(bundle.components)})")
    missing = [c for c in names if "fp32" not in bundle.components[c].artifacts]
    if missing:
        raise InputError(f"component(s) {', '.join(missing)} have no fp32 ONNX to quantize; "
                         "re-run mmedge export")
    return [c for c in bundle.components if c in names]


def parity(reference: Path, candidate: Path, feeds: list[dict[str, np.ndarray]], output: str,
           threads: int | None = None, name: str | None = None) -> dict[str, Any]:
    """Max/mean abs diff of `candidate` vs the fp32 ONNX on real feeds; ExportError on non-finite outputs."""
    import onnxruntime as ort

    from mmedge.runtime.backends.onnxruntime.runner import session_options

    opts = session_options(threads)
    ref = ort.InferenceSession(str(reference), opts, providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(str(candidate), opts, providers=["CPUExecutionProvider"])
    expected = np.concatenate([ref.run([output], feed)[0] for feed in feeds])
    result = compare({output: expected}, {output: np.concatenate([got.run([output], feed)[0] for feed in feeds])})
    if result[output].nonfinite:
        raise ExportError(f"{name or candidate.name} produces non-finite outputs on real samples; not saved")
    return {**result[output].to_json(), "samples": len(expected), "reference": "onnx fp32"}


def quantize_component(txn: Transaction, name: str, opts: QuantizeOptions, calib: ComponentFeeds | None,
                       checks: ComponentFeeds) -> QuantizeResult:
    """Write one component's artifact under a new name, check it, measure parity, register it (not committed)."""
    bundle, key = txn.bundle, opts.key()
    src = bundle.artifact_path(name, "fp32")
    label = f"{name}.{key}.onnx"
    start = time.perf_counter()
    output = bundle.components[name].outputs[0].name
    with txn.new_file(f"{name}.{key}", ".onnx") as new:  # checked and measured before it gets its final name
        tmp = new.tmp
        if opts.precision == "fp16":
            settings = convert_fp16(src, tmp)
        else:
            reader = calib.reader(name) if calib is not None else None
            settings = quantize_int8(src, tmp, reader, target=opts.target, method=opts.method,
                                     rounding=opts.rounding, threads=opts.threads,
                                     float_prefix_macs=opts.max_float_macs)
            if settings["calibration"] is not None and calib is not None:
                settings["calibration"].update(samples=calib.samples[name], data=calib.source, split="train")
            if opts.target == "tensorrt":
                enforce_trt_rules(tmp, label)
                settings["qdq_check"] = "passed"
        stamp_artifact(tmp, bundle, name, key)  # metadata_props + unused opset imports dropped, before hashing
        figures = parity(src, tmp, checks.feeds[name], output, opts.threads, label)
    file = new.name
    settings.update(source_sha256=bundle.artifact(name, "fp32").sha256,
                    seconds=round(time.perf_counter() - start, 2))
    art = bundle.add_artifact(name, key, file, parity=figures, settings=settings)
    log.info("%s %s: max |Δ| %.3g vs fp32", name, key, figures["max_abs_diff"])
    return QuantizeResult(name, key, file, art.bytes, figures, settings)


def enforce_trt_rules(path: Path, name: str) -> None:
    """Run the TensorRT Q/DQ checker on `path` (to become `name`); ExportError listing violations."""
    problems = check_trt_qdq(path)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ExportError(f"{name} violates TensorRT explicit-quantization rules "
                          f"({len(problems)}): {shown}")


def quantize_bundle(bundle: Bundle | str | Path, opts: QuantizeOptions,
                    progress: ProgressFn | None = None) -> list[QuantizeResult]:
    """Add `opts.precision` artifacts for the chosen components in one transaction, return what was written.

    The writer lock is held throughout and bundle.json is re-read under it, so concurrent quantize runs
    serialize; a failure or a kill leaves the bundle as it was.
    """
    with update(bundle) as txn:
        return _quantize(txn, opts, progress)


def _quantize(txn: Transaction, opts: QuantizeOptions, progress: ProgressFn | None) -> list[QuantizeResult]:
    bundle = txn.bundle
    names = validate(bundle, opts)
    if progress:
        progress("reading calibration data")
    calib = None
    if opts.precision == "int8":
        calib_set = load_samples(bundle, opts.calib, "train", opts.samples)
        calib = component_feeds(bundle, calib_set, names, threads=opts.threads)
    checks = component_feeds(bundle, load_samples(bundle, opts.calib, "val", opts.parity_samples), names,
                             threads=opts.threads)
    results = []
    for name in track(names, f"quantizing to {opts.key()}"):  # a bar with ETA in the CLI
        if progress:
            progress(f"{opts.key()} {name}")
        results.append(quantize_component(txn, name, opts, calib, checks))
    log.info("quantized %s to %s with data %s", ", ".join(names), opts.key(), data_spec(bundle, opts.calib))
    return results

