"""`mmedge export`: a training run → a bundle of per-component ONNX files, validated against torch."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmedge import __version__
from mmedge.bundle import MANIFEST, TORCH_DIR, Bundle, Component, batch_range
from mmedge.bundle_checks import confine
from mmedge.data.manifest import resolve_dataset
from mmedge.data.preprocess import Preprocessor
from mmedge.errors import ExportError
from mmedge.eval.compare import Tolerance, compare
from mmedge.exporters.onnx_export import OPSET, export_module
from mmedge.exporters.onnx_meta import stamp_artifact
from mmedge.io import atomic_path
from mmedge.models.hf.architecture import saved_architectures
from mmedge.runtime.backends.onnxruntime.runner import OrtRunner
from mmedge.specs import HEAD, TensorSpec, embedding_name
from mmedge.train.checkpoint import CHECKPOINT, RUN_META, LoadedRun, load_run
from mmedge.transaction import recover_folder, staging_folder, swap_in, writer_lock

log = logging.getLogger(__name__)
FP32_BOUND = 1e-4
ProgressFn = Callable[[str], None]


def component_modules(run: LoadedRun) -> dict[str, tuple[torch.nn.Module, list[TensorSpec], list[TensorSpec]]]:
    """{component: (module, input specs, output specs)} in export order."""
    model, dim = run.model, run.config.model.embed_dim
    out: dict[str, tuple[torch.nn.Module, list[TensorSpec], list[TensorSpec]]] = {}
    for m in model.modalities:
        enc = model.encoder(m)
        out_spec = TensorSpec(embedding_name(m), "float32", ("batch", dim), batch_range())
        out[m] = (enc, enc.input_specs(), [out_spec])
    logits = TensorSpec("logits", "float32", ("batch", len(run.labels)), batch_range())
    out[HEAD] = (model.head, model.head.input_specs(), [logits])
    return out


def parity_feeds(run: LoadedRun, data: str | None, n: int) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Real preprocessed samples (val split), text padded to the batch's longest row."""
    ds = resolve_dataset(data or run.config.data, "val", split_seed=run.config.split_seed)
    pre = Preprocessor(run.config.model.modalities, run.preprocessing, root=run.root)
    batch = pre.batch(ds.samples[:n])
    return batch.feeds, batch.present


def torch_outputs(module: torch.nn.Module, specs: list[TensorSpec], feed: dict[str, np.ndarray]) -> np.ndarray:
    """Eval-mode torch output for a numpy feed."""
    with torch.no_grad():
        return module(*(torch.from_numpy(feed[s.name]) for s in specs)).numpy()


def export_run(run_dir: str | Path, out_dir: str | Path, data: str | None = None, samples: int = 64,
               bound: float = FP32_BOUND, progress: ProgressFn | None = None) -> Bundle:
    """Export every component to ONNX, check parity vs torch on real samples, write the bundle.

    The bundle is built in a fresh sibling folder and swapped in whole (atomically on Linux) under the
    bundle's writer lock: an existing bundle at `out_dir` stays as it was until the swap, and a failed or
    killed export leaves it untouched.
    """
    run = load_run(run_dir)
    out = Path(out_dir)
    with writer_lock(out):
        recover_folder(out)
        if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
            raise ExportError(f"--out {out} exists and is not a bundle; export replaces the whole folder, so "
                              "give a new or empty folder (or an existing bundle to re-export)")
        staging = staging_folder(out)
        try:
            bundle = _export_into(run, staging, data, samples, bound, progress)
            swap_in(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    bundle.relocate(out)
    return bundle


def _export_into(run: LoadedRun, out: Path, data: str | None, samples: int, bound: float,
                 progress: ProgressFn | None) -> Bundle:
    """Write the whole bundle into the (new, empty) folder `out`."""
    feeds, present = parity_feeds(run, data, samples)
    bundle = Bundle(root=out, name=run.config.name, labels=run.labels, modalities=run.config.model.modalities,
                    components={}, preprocessing=run.preprocessing,
                    fusion={"op": run.config.model.fusion, "requires_all": run.model.head.requires_all},
                    provenance=provenance(run), metrics=run.metrics.get("test", {}))
    head_feed: dict[str, np.ndarray] = {"present": present}
    for name, (module, inputs, outputs) in component_modules(run).items():
        if progress:
            progress(name)
        feed = head_feed if name == HEAD else feeds[name]
        expected = torch_outputs(module, inputs, feed)
        example = tuple(torch.from_numpy(feed[s.name]) for s in inputs)
        export_module(module, inputs, outputs, example, out / f"{name}.onnx")
        bundle.components[name] = Component(name, "head" if name == HEAD else "encoder", inputs, outputs)
        stamp_artifact(out / f"{name}.onnx", bundle, name, "fp32")  # metadata_props, before it is hashed
        diff = check_parity(out / f"{name}.onnx", inputs, outputs, feed, expected, bound)
        bundle.add_artifact(name, "fp32", f"{name}.onnx", parity=diff, settings={"opset": OPSET})
        if name != HEAD:
            head_feed[embedding_name(name)] = expected
    for relative in copy_side_files(run, out):
        bundle.add_file(relative)  # every file a runtime reads has its sha256 in bundle.json
    bundle.save()
    return bundle


def check_parity(path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec], feed: dict[str, np.ndarray],
                 expected: np.ndarray, bound: float) -> dict[str, Any]:
    """Max/mean abs diff of ONNX Runtime vs torch; ExportError when the max is above `bound`."""
    name = outputs[0].name
    with OrtRunner(path, inputs, outputs) as runner:
        got = runner.infer(feed)[name]
    result = compare({name: expected}, {name: got}, Tolerance(atol=bound, rtol=0.0, stat="max"))[name]
    if not result.passed:
        raise ExportError(f"{path.name}: ONNX Runtime differs from PyTorch by {result.max_abs_diff:.3g} "
                          f"(bound {bound:g}) on real samples: {result.summary()}")
    log.info("%s parity: max abs diff %.3g", path.name, result.max_abs_diff)
    return {**result.to_json(), "samples": len(got), "reference": "torch fp32"}


def copy_side_files(run: LoadedRun, out: Path) -> list[str]:
    """Tokenizer and the torch reference (weights + run.json) into the bundle, atomically; their bundle paths."""
    files = [f"{TORCH_DIR}/{CHECKPOINT}", f"{TORCH_DIR}/{RUN_META}"]
    sources = [run.root / CHECKPOINT, run.root / RUN_META]
    if run.preprocessing.text is not None:
        tok = run.preprocessing.text.tokenizer
        files.append(tok)
        sources.append(run.root / tok)
    for relative in saved_architectures(run.root):  # hf: encoders' config files: the reference needs no folder
        files.append(f"{TORCH_DIR}/{relative}")
        sources.append(run.root / relative)
    for src, relative in zip(sources, files, strict=True):
        confine(out, relative, relative)  # a run's tokenizer path never writes outside the bundle
        if not src.is_file():
            raise ExportError(f"run file missing: {src}")
        with atomic_path(out / relative) as tmp:
            shutil.copyfile(src, tmp)
    return files


def provenance(run: LoadedRun) -> dict[str, Any]:
    """Versions and hashes that produced this bundle."""
    import onnx

    return {"mmedge": __version__, "torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET,
            "exporter": "torch.onnx (TorchScript)", "config_digest": run.config.digest(), "data": run.config.data,
            "split_seed": run.config.split_seed,  # eval/quantize/bench then read the run's own val/test rows
            "run": str(run.root), "preset": run.config.model.preset, "mode": run.config.train.mode}
