"""Loader of the "onnxruntime" backend: the component's ONNX at a precision on the CPU provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmedge.runtime.backends import Backend
from mmedge.runtime.backends.onnxruntime.runner import OrtRunner
from mmedge.runtime.options import NoOptions, RunnerOptions

if TYPE_CHECKING:
    from mmedge.bundle import Bundle


def make_runner(bundle: Bundle, component: str, precision: str, options: RunnerOptions) -> OrtRunner:
    """Inactive runner of `component`'s `precision` artifact (uses `threads`)."""
    options.section("onnxruntime", NoOptions, uses=("threads",))
    comp = bundle.components[component]
    path = bundle.artifact_path(component, precision)  # confined and sha256-checked once per Bundle
    return OrtRunner(path, comp.inputs, comp.outputs, options.threads, component=component)


BACKEND = Backend("onnxruntime", make_runner)
