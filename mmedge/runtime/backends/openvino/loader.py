"""Loader of the "openvino" backend: a component's verified ONNX (any precision) compiled for OpenVINO's CPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmedge.errors import BackendError
from mmedge.runtime.artifacts import artifact_bytes
from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.openvino.runner import OpenVINORunner
from mmedge.runtime.options import RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle

HINTS = ("LATENCY", "THROUGHPUT")


@dataclass(frozen=True)
class OpenVINOOptions:
    """Settings of the openvino backend."""

    hint: str = "LATENCY"  # OpenVINO's PERFORMANCE_HINT

    def __post_init__(self) -> None:
        if self.hint not in HINTS:
            raise BackendError(f"openvino backend: hint must be one of {', '.join(HINTS)}, got {self.hint!r}")


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> OpenVINORunner:
    """Inactive runner of `component`'s `precision` ONNX on OpenVINO's CPU plugin (uses `threads`)."""
    settings = options.section("openvino", OpenVINOOptions, uses=("threads",))
    comp = bundle.components[component]
    model = artifact_bytes(bundle, component, precision)  # read once, sha256-checked, compiled from memory
    name = bundle.artifact(component, precision).file
    return OpenVINORunner(model, name, comp.inputs, comp.outputs, options.threads, settings.hint, component)


BACKEND = Backend("openvino", make_runner, parallel_load=True, runtime_module="openvino")
