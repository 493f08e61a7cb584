"""Components load on a thread pool while the tokenizer loads: the same answers, nothing half-built."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import mmedge.runtime.loading as loading
from mmedge.bundle import Bundle
from mmedge.errors import BundleError
from mmedge.runtime.backends import backend_info
from mmedge.runtime.backends.onnxruntime.runner import OrtRunner
from mmedge.runtime.options import RunnerOptions
from mmedge.runtime.pipeline import Pipeline
from mmedge.runtime.runner import Runner


def test_parallel_load_gives_the_sequential_pipelines_answers(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    seen: set[str] = set()
    real = OrtRunner._activate

    def recording(self: OrtRunner) -> None:
        seen.add(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(OrtRunner, "_activate", recording)
    monkeypatch.setattr(loading, "usable_cores", lambda: 2)
    with Pipeline.from_bundle(tiny_bundle, threads=1) as parallel:
        assert list(parallel.runners) == [*parallel.modalities, "fusion_head"]  # bundle order
        got = parallel.predict(text="seven", image=np.full((8, 8), 200, np.uint8)).probabilities
    assert all(name.startswith("mmedge-load") for name in seen), seen
    monkeypatch.setattr(loading, "usable_cores", lambda: 1)
    with Pipeline.from_bundle(tiny_bundle, threads=1) as sequential:
        assert sequential.predict(text="seven", image=np.full((8, 8), 200, np.uint8)).probabilities == got


def test_a_failing_component_leaves_nothing_active(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    bundle = Bundle.load(tiny_bundle)
    (tiny_bundle / bundle.artifact("audio", "fp32").file).write_bytes(b"not the exported graph")
    monkeypatch.setattr(loading, "usable_cores", lambda: 4)
    built: dict[str, Runner] = {}
    keys = {c: "fp32" for c in bundle.components}
    with pytest.raises(BundleError, match="altered"):
        loading.load_runners(backend_info("onnxruntime"), bundle, keys, RunnerOptions.make(None, threads=1),
                             built, lambda: "tokenizer")
    # loads that had started finished before the raise (active); those not started yet were cancelled
    assert "audio" not in built and built and all(r.is_active for r in built.values())
    for runner in built.values():
        runner.deactivate()
    made: list[OrtRunner] = []
    real = OrtRunner._activate

    def recording(self: OrtRunner) -> None:
        made.append(self)
        real(self)

    monkeypatch.setattr(OrtRunner, "_activate", recording)
    with pytest.raises(BundleError, match="altered"):
        Pipeline.from_bundle(tiny_bundle)
    assert made and not any(r.is_active for r in made)  # what was made is released again
