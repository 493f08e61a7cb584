"""The orchestration shared by `mmedge demo`, the bench suite and `mmedge quantize --auto`.

Small steps — train a preset, export, quantize what a bundle lacks, choose precisions, compare
backends — that every flow composes; the CLI commands only parse, call one function here, render.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmedge.bundle import MANIFEST, Bundle
from mmedge.errors import InputError, MmedgeError
from mmedge.specs import MODALITIES

log = logging.getLogger(__name__)
StepFn = Callable[[str], None]
EpochFn = Callable[[int, int, dict[str, float]], None]
BUILD_KEYS = {"preset", "run_dir", "epochs", "limit", "seed"}


def _quiet(message: str) -> None:
    """Default progress sink: the log."""
    log.info("%s", message)


# ---- steps ------------------------------------------------------------------------------------
def train_preset(preset: str, out_dir: str | Path, *, name: str | None = None, epochs: int | None = None,
                 seed: int | None = None, limit: int | None = None, modalities: Sequence[str] | None = None,
                 modality_dropout: float | None = None, progress: EpochFn | None = None) -> Any:
    """Train a named preset (with the given overrides) into `out_dir`; return its TrainResult."""
    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    cfg = preset_config(preset)
    cfg.name = name or cfg.name
    if epochs:
        cfg.train.epochs = int(epochs)
    if seed is not None:
        cfg.train.seed = int(seed)
    if limit is not None:
        cfg.limit = int(limit)
    if modalities is not None:
        cfg.model.modalities = list(modalities)
    if modality_dropout is not None:
        cfg.train.modality_dropout = modality_dropout
    return train_run(cfg, out_dir, progress)


def export_bundle(run_dir: str | Path, out_dir: str | Path) -> Bundle:
    """Export a training run to a bundle (parity-checked against torch)."""
    from mmedge.exporters.export_run import export_run

    return export_run(run_dir, out_dir)


def ensure_bundle(path: str | Path, build: dict[str, Any] | None = None, name: str = "bundle",
                  say: StepFn = _quiet) -> Path:
    """The bundle folder at `path`, trained (`build.preset`, …) and exported first when it does not exist."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not build:
        raise InputError(f"bundle {path} does not exist and the suite gives no 'build' for '{name}'")
    unknown = sorted(set(build) - BUILD_KEYS)
    if unknown:
        raise InputError(f"{name}.build: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(BUILD_KEYS))})")
    run_dir = Path(build.get("run_dir", path.parent / f"{name}-run"))
    preset = str(build.get("preset", name))
    say(f"{name}: training the {preset} preset into {run_dir}")

    def epoch_done(epoch: int, epochs: int, fig: dict[str, float]) -> None:
        say(f"{name}: training epoch {epoch}/{epochs}, val accuracy {fig.get('val_accuracy', 0.0):.3f}")

    train_preset(preset, run_dir, epochs=build.get("epochs"), seed=build.get("seed"), limit=build.get("limit"),
                 progress=epoch_done)
    say(f"{name}: exporting to {path}")
    export_bundle(run_dir, path)
    return path


def add_precisions(bundle: Bundle | str | Path, precisions: Sequence[str], name: str = "bundle",
                   say: StepFn = _quiet) -> list[Any]:
    """Quantize the bundle to each listed precision it lacks ('int8-trt' = int8 for TensorRT); a failure warns."""
    from mmedge.quantize.run import QuantizeOptions, quantize_bundle

    loaded = Bundle.coerce(bundle)
    results: list[Any] = []
    for precision in precisions:
        if all(precision in c.artifacts for c in loaded.components.values()):
            continue
        target = "tensorrt" if precision == "int8-trt" else "cpu"
        try:
            say(f"{name}: adding {precision} artifacts")
            # one transaction each; `loaded` is brought up to date with what was committed
            results += quantize_bundle(loaded, QuantizeOptions("int8" if target == "tensorrt" else precision,
                                                               target))
        except (MmedgeError, ImportError) as exc:
            log.warning("%s: could not add %s artifacts (%s); that precision is skipped", name, precision, exc)
            loaded = Bundle.load(loaded.root)  # the failed run committed nothing: the bundle as on disk
    return results


def ensure_candidates(bundle: Bundle, opts: Any, progress: StepFn | None = None) -> list[Any]:
    """Create the fp16 and cpu int8 artifacts that automatic precision needs and the bundle lacks."""
    from mmedge.quantize.run import quantize_bundle

    results: list[Any] = []
    names = [c for c in opts.components or list(bundle.components) if c in bundle.components]
    for precision in ("fp16", "int8"):  # each a transaction that refreshes `bundle` with what it committed
        todo = [c for c in names if precision not in bundle.components[c].artifacts]
        if todo:
            todo_opts = replace(opts, precision=precision, target="cpu", components=todo)
            results += quantize_bundle(bundle, todo_opts, progress=progress)
    return results


@dataclass
class QuantizeOutcome:
    """What `mmedge quantize` did: the artifacts written and, with --auto, the chosen precision map."""

    results: list[Any] = field(default_factory=list)  # mmedge.quantize.run.QuantizeResult
    chosen: Any = None  # mmedge.quantize.auto_precision.AutoResult

    def to_json(self) -> dict[str, Any]:
        """The `--json` document."""
        data: dict[str, Any] = {"artifacts": [r.to_json() for r in self.results]}
        if self.chosen is not None:
            data["auto_precision"] = self.chosen.to_json()
        return data


def quantize(bundle: Bundle | str | Path, opts: Any, *, auto: bool = False, budget: float = 0.5,
             min_agreement: float = 0.98, progress: StepFn | None = None) -> QuantizeOutcome:
    """Add `opts.precision` artifacts; with `auto`, add the candidates and choose the fastest map within budget."""
    from mmedge.quantize.run import quantize_bundle

    loaded, say = Bundle.coerce(bundle), progress or _quiet
    if not auto:
        return QuantizeOutcome(quantize_bundle(loaded, opts, progress=lambda s: say(f"{s} …")))
    from mmedge.quantize.auto_precision import auto_precision
    from mmedge.transaction import writer_lock

    with writer_lock(loaded.root):  # no other writer between adding the candidates and choosing among them
        results = ensure_candidates(loaded, opts, say)
        say("measuring candidates …")
        chosen = auto_precision(loaded, opts.calib, budget=budget, min_agreement=min_agreement,
                                threads=opts.threads)
    return QuantizeOutcome(results, chosen)


# ---- the demo ---------------------------------------------------------------------------------
@dataclass
class DemoResult:
    """Everything the demo measured, for the final table."""

    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # subset → fused figures
    standalone: dict[str, float] = field(default_factory=dict)  # modality → its own model's accuracy
    parity: dict[str, Any] = field(default_factory=dict)
    latency: Any = None  # mmedge.bench.report.BenchReport
    seconds: dict[str, float] = field(default_factory=dict)
    bundle: Path | None = None


def run_demo(workdir: str | Path = "runs/demo", export_dir: str | Path = "export/demo", epochs: int | None = None,
             iters: int = 200, step: StepFn | None = None) -> DemoResult:
    """Run the whole path on `digits` and return its figures."""
    from mmedge.eval.evaluate import evaluate_bundle

    say = step or (lambda _msg: None)
    work, result = Path(workdir), DemoResult()
    started = time.perf_counter()
    say("training the fused tri-modal model (tiny preset)")
    fused = train_preset("tiny", work / "fused", name="fused", epochs=epochs)
    result.accuracy = fused.metrics["test"]
    for m in MODALITIES:
        say(f"training the {m}-only model for comparison")
        alone = train_preset("tiny", work / f"{m}-only", name=f"{m}-only", epochs=epochs, modalities=[m],
                             modality_dropout=0.0)
        result.standalone[m] = alone.metrics["test"][m]["accuracy"]
    result.seconds["train"] = time.perf_counter() - started
    say("exporting encoders and fusion head to ONNX")
    bundle = export_bundle(work / "fused", export_dir)
    result.bundle = Path(export_dir)
    say("evaluating: ONNX Runtime vs PyTorch on the test split")
    result.parity = compare_backends(Path(export_dir), evaluate_bundle)
    say("measuring latency: PyTorch eager vs ONNX Runtime, batch 1")
    from mmedge.bench.harness import compare_latency

    # one thread per runtime: on a small shared machine, multi-threaded torch eager slows down far
    # more than ONNX Runtime, which would flatter the ratio
    result.latency = compare_latency(bundle.root, [("torch", "fp32"), ("onnxruntime", "fp32")], batch=1,
                                     warmup=20, iters=iters, threads=1)
    result.seconds["total"] = time.perf_counter() - started
    return result


def compare_backends(bundle: Path, evaluate_bundle: Callable[..., Any]) -> dict[str, Any]:
    """Accuracy of both backends on the test split, their max logit difference and argmax agreement."""
    from mmedge.eval.compare import compare

    ort = evaluate_bundle(bundle, "digits", "test", "onnxruntime", "fp32")
    ref = evaluate_bundle(bundle, "digits", "test", "torch", "fp32")
    logits = compare({"logits": ref.logits}, {"logits": ort.logits})["logits"]
    return {"onnxruntime_accuracy": ort.subsets["all"]["accuracy"], "torch_accuracy": ref.subsets["all"]["accuracy"],
            "max_abs_logit_diff": logits.max_abs_diff,
            "argmax_identical": bool((ort.logits.argmax(1) == ref.logits.argmax(1)).all()),
            "n": len(ort.logits)}
