"""Loader of the "onnxruntime" backend: the component's ONNX at a precision on the CPU provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmedge.errors import BackendError
from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.onnxruntime.runner import ModelSource, OrtRunner
from mmedge.runtime.options import RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle


@dataclass(frozen=True)
class OrtOptions:
    """Settings of the onnxruntime backend."""

    # The fp32 graph through ONNX Runtime's quantize_dynamic at load: the naive int8 peer of benchmarks.
    naive_int8: bool = False


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> OrtRunner:
    """Inactive runner of `component`'s `precision` artifact (uses `threads`)."""
    settings = options.section("onnxruntime", OrtOptions, uses=("threads",))
    comp = bundle.components[component]
    path = bundle.artifact_path(component, precision)  # confined and sha256-checked once per Bundle
    if settings.naive_int8:
        if precision != "fp32":
            raise BackendError(f"naive_int8 quantizes the fp32 graph; run it with precision fp32, not {precision}")
        from mmedge.quantize.naive_dynamic import naive_dynamic_int8

        model = naive_dynamic_int8(path.read_bytes())
        source = ModelSource(lambda: model)  # made here, so not cached
    else:
        recorded = bundle.artifact(component, precision).sha256 if bundle.verify_hashes else None
        # A path: ORT reads it once (no second copy held); on a graph-cache miss the cache reads and
        # re-hashes it, since the Bundle checked it only on first use and an entry outlives this process.
        source = ModelSource(lambda: str(path), recorded)
    return OrtRunner(path, comp.inputs, comp.outputs, options.threads, component=component, source=source)


BACKEND = Backend("onnxruntime", make_runner, parallel_load=True, runtime_module="onnxruntime")
