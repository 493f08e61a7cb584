"""What a bench run measures: its spec, and the checked list of configurations it expands to."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.bench.timers import CpuTimer, Timer
from mmedge.errors import BundleError, InputError
from mmedge.specs import HEAD

if TYPE_CHECKING:
    from mmedge.bundle import Bundle

logger = logging.getLogger(__name__)

COMPILE = "torch-compile"
TRT_GRAPH = "tensorrt-cudagraph"
NAIVE_INT8 = "ort-naive-int8"
# configuration names that are a registered backend with options (side by side with the plain backend)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {COMPILE: ("torch", {"compile": True}),
                                                   TRT_GRAPH: ("tensorrt", {"cuda_graph": True}),
                                                   NAIVE_INT8: ("onnxruntime", {"naive_int8": True})}
# variants that make one precision themselves: shown precision -> the bundle precision they load
# (the naive int8 peer quantizes the fp32 graph at load with ONNX Runtime's quantize_dynamic)
VARIANT_PRECISION: dict[str, tuple[str, str]] = {NAIVE_INT8: ("int8", "fp32")}
# peers of mmedge's own rows: one that cannot load (e.g. a missing optional package) becomes a failed row
PEERS: frozenset[str] = frozenset({COMPILE, NAIVE_INT8, "openvino"})
MODES: tuple[str, ...] = ("auto", "concurrent", "sequential")


@dataclass
class BenchSpec:
    """Everything one `mmedge bench` run measures and writes."""

    bundle: Path | Bundle  # a path is loaded (and verified) once by run_bench
    backends: list[str] = field(default_factory=lambda: ["torch", "onnxruntime"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    batches: list[int] = field(default_factory=lambda: [1])
    configs: list[tuple[str, str]] | None = None  # explicit (backend, precision) pairs; first = reference
    warmup: int = 10
    iters: int = 100
    seconds: float | None = None  # measure for this long instead of `iters` rounds
    threads: int | str | None = None  # "auto": the usable cores shared among the encoders
    modalities: list[str] | None = None  # default: every modality of the bundle
    compile: bool = False  # add a torch.compile row after torch
    mode: str = "auto"  # encoders in the headline run: auto (the pipeline measures) | concurrent | sequential
    stages: bool = True  # also measure the other encoder mode, preprocessing and end to end
    data: str = "digits"
    split: str = "test"
    pool: int = 64  # real samples rotated through
    seed: int = 0
    accuracy: bool = False
    cold_start: list[str] = field(default_factory=list)  # precisions whose cold start (fresh process) is measured
    cold_start_runs: int = 5
    power: bool | None = None  # None: when tegrastats exists
    power_seconds: float = 3.0
    missing_precisions: str = "error"  # or "skip" (suites): leave out precisions the bundle lacks
    title: str | None = None
    label_prefix: str = ""
    timer_factory: Callable[[], Timer] = CpuTimer
    json_path: Path | None = None
    report_dir: Path | None = None


def split_backend(name: str) -> tuple[str, dict[str, Any]]:
    """Registered backend and runner options of a configuration's backend name."""
    backend, options = VARIANTS.get(name, (name, {}))
    return backend, dict(options)


def load_precision(backend: str, precision: str) -> str:
    """The bundle precision a configuration loads (a variant that quantizes at load starts from fp32)."""
    shown, source = VARIANT_PRECISION.get(backend, (precision, precision))
    return source if precision == shown else precision


def check_spec(spec: BenchSpec) -> None:
    """InputError for batch sizes, iterations, warm-up or seconds out of range."""
    if not spec.batches or any(b < 1 for b in spec.batches):
        raise InputError(f"batch sizes must be >= 1, got {spec.batches}")
    if spec.warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {spec.warmup}")
    if spec.iters < 1:
        raise InputError(f"--iters must be >= 1, got {spec.iters}")
    if spec.seconds is not None and spec.seconds <= 0:
        raise InputError(f"--seconds must be > 0, got {spec.seconds}")
    if spec.threads is not None and spec.threads != "auto" and (not isinstance(spec.threads, int)
                                                                or spec.threads < 1):
        raise InputError(f"--threads must be an integer >= 1 or 'auto', got {spec.threads}")
    if spec.mode not in MODES:
        raise InputError(f"unknown mode '{spec.mode}' (choose from: {', '.join(MODES)})")
    if spec.missing_precisions not in ("error", "skip"):
        raise InputError(f"missing_precisions must be 'error' or 'skip', got {spec.missing_precisions!r}")


def resolve_modalities(bundle: Bundle, wanted: list[str] | None) -> list[str]:
    """Benchmarked modalities in bundle order; InputError for ones the bundle lacks."""
    if not wanted:
        return list(bundle.modalities)
    unknown = [m for m in wanted if m not in bundle.modalities]
    if unknown:
        raise InputError(f"bundle has no {', '.join(unknown)} encoder (its modalities: {', '.join(bundle.modalities)})")
    mods = [m for m in bundle.modalities if m in wanted]
    if bundle.requires_all_modalities and len(mods) < len(bundle.modalities):
        raise InputError(
            f"this model's fusion ('{bundle.fusion.get('op')}') needs every modality "
            f"({', '.join(bundle.modalities)}): benchmark all of them"
        )
    return mods


def _missing_artifact(bundle: Bundle, key: str, components: list[str]) -> str | None:
    """The first component without an artifact `key`, or None."""
    return next((c for c in components if key not in bundle.components[c].artifacts), None)


def plan_configs(spec: BenchSpec, bundle: Bundle, modalities: list[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs in measurement order; the first is the reference.

    `int8` means each backend's own int8 artifact (`int8-trt` on TensorRT), so one precision list
    compares backends fairly; a missing artifact is an error naming the quantize command (or, for
    suites, a skipped configuration).
    """
    from mmedge.precision import artifact_key, check_name, quantize_command
    from mmedge.runtime.backends import available_backends, backend_info

    pairs = list(spec.configs) if spec.configs else [(b, p) for b in spec.backends for p in spec.precisions]
    if spec.compile and not spec.configs and "torch" in spec.backends and "fp32" in spec.precisions:
        at = pairs.index(("torch", "fp32")) + 1
        pairs.insert(at, (COMPILE, "fp32"))
    known = [*available_backends(), *VARIANTS]
    components = [*modalities, HEAD]
    plan: list[tuple[str, str]] = []
    for backend, precision in pairs:
        if backend not in known:
            raise InputError(f"unknown backend '{backend}' (choose from: {', '.join(known)})")
        check_name(precision)
        runner_backend = split_backend(backend)[0]
        if backend in VARIANT_PRECISION and precision != VARIANT_PRECISION[backend][0]:
            only = VARIANT_PRECISION[backend][0]
            if spec.configs:
                raise InputError(f"{backend} runs {only} only; ask for {backend}/{only}")
            logger.info("skipping %s %s: it runs %s only", backend, precision, only)
            continue
        if backend_info(runner_backend).fp32_only:
            if precision != "fp32":
                if spec.configs:
                    raise InputError(f"{backend} runs fp32 only (the reference); {precision} runs on onnxruntime")
                logger.info("skipping %s %s: the %s backend is the fp32 reference", backend, precision, backend)
                continue
        else:
            key = artifact_key(load_precision(backend, precision), runner_backend)
            missing = _missing_artifact(bundle, key, components)
            if missing is not None:
                if spec.missing_precisions == "skip":
                    logger.warning("skipping %s %s: the bundle has no %s artifacts", backend, precision, key)
                    continue
                raise BundleError(f"bundle {bundle.root} has no {key} artifact for '{missing}' (needed by "
                                  f"{backend} {precision}); create it with: {quantize_command(bundle.root, key)}")
        if (backend, precision) not in plan:
            plan.append((backend, precision))
    if not plan:
        raise InputError(
            f"nothing to benchmark: backends {spec.backends} x precisions {spec.precisions} leaves no "
            "configuration (torch runs fp32 only)"
        )
    return plan
