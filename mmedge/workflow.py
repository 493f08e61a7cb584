"""`mmedge demo`: built-in dataset → train (fused + one model per modality) → export → eval → latency."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.specs import MODALITIES

log = logging.getLogger(__name__)
StepFn = Callable[[str], None]


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
    from mmedge.exporters.export_run import export_run
    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    say = step or (lambda _msg: None)
    work, result = Path(workdir), DemoResult()
    started = time.perf_counter()
    say("training the fused tri-modal model (tiny preset)")
    fused_cfg = preset_config("tiny")
    fused_cfg.name = "fused"
    if epochs:
        fused_cfg.train.epochs = epochs
    fused = train_run(fused_cfg, work / "fused")
    result.accuracy = fused.metrics["test"]
    for m in MODALITIES:
        say(f"training the {m}-only model for comparison")
        cfg = preset_config("tiny")
        cfg.name, cfg.model.modalities, cfg.train.modality_dropout = f"{m}-only", [m], 0.0
        if epochs:
            cfg.train.epochs = epochs
        result.standalone[m] = train_run(cfg, work / f"{m}-only").metrics["test"][m]["accuracy"]
    result.seconds["train"] = time.perf_counter() - started
    say("exporting encoders and fusion head to ONNX")
    bundle = export_run(work / "fused", export_dir)
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
    import numpy as np

    ort = evaluate_bundle(bundle, "digits", "test", "onnxruntime", "fp32")
    ref = evaluate_bundle(bundle, "digits", "test", "torch", "fp32")
    return {"onnxruntime_accuracy": ort.subsets["all"]["accuracy"], "torch_accuracy": ref.subsets["all"]["accuracy"],
            "max_abs_logit_diff": float(np.abs(ort.logits - ref.logits).max()),
            "argmax_identical": bool((ort.logits.argmax(1) == ref.logits.argmax(1)).all()),
            "n": len(ort.logits)}
