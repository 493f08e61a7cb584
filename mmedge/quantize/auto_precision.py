"""`mmedge quantize --auto`: the fastest per-component precision map within an accuracy budget.

Each candidate (component, precision) is timed alone on ONNX Runtime CPU at batch 1 with a real input
(p50 over `repeat` runs, warm-up excluded); a combination costs the sum of its components' p50s (the
sequential compute of one sample). Accuracy of a combination is the Pipeline's accuracy on the val
split (encoders cached per precision, the head re-run per combination). Combinations are tried from
fastest to slowest; the first whose accuracy is at least fp32's minus the budget (in points) AND whose
top-1 agreement with fp32 is at least `min_agreement` wins. The agreement floor is there because an
accuracy difference on a few hundred samples is noisy: on the edge preset, a combination matched fp32
accuracy on val yet lost points on test, and only its low agreement with fp32 on val gave it away.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bench.stats import summarize
from mmedge.bundle import Bundle
from mmedge.data.manifest import resolve_dataset
from mmedge.data.sample import Dataset
from mmedge.errors import InputError
from mmedge.eval.evaluate import align_labels
from mmedge.eval.precision_report import ComponentOutputs, precision_label
from mmedge.quantize.calibration import data_spec
from mmedge.runtime.timing import CpuTimer
from mmedge.specs import HEAD, embedding_name
from mmedge.transaction import update

log = logging.getLogger(__name__)
CANDIDATES: tuple[str, ...] = ("fp32", "fp16", "int8")
Combo = dict[str, str]


@dataclass
class AutoResult:
    """The chosen map and the measurements behind it."""

    choice: Combo
    accuracy: float
    reference_accuracy: float
    latency_ms: float
    reference_latency_ms: float
    budget_points: float
    agreement: float
    min_agreement: float
    latency: dict[str, dict[str, float]]
    solo_accuracy: dict[str, dict[str, float]]
    tried: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record stored in bundle.json provenance['auto_precision']."""
        return {"choice": self.choice, "accuracy": self.accuracy,
                "reference_accuracy": self.reference_accuracy, "latency_ms": self.latency_ms,
                "reference_latency_ms": self.reference_latency_ms, "budget_points": self.budget_points,
                "agreement_with_fp32": self.agreement, "min_agreement": self.min_agreement,
                "latency_ms_per_candidate": self.latency, "accuracy_per_candidate": self.solo_accuracy,
                "combinations_tried": self.tried, **self.settings}


def pick(latency: dict[str, dict[str, float]], score: Callable[[Combo], tuple[float, float]], reference: float,
         budget_points: float, min_agreement: float = 0.0) -> tuple[Combo, tuple[float, float], int]:
    """Fastest combo with accuracy ≥ reference − budget and agreement ≥ min; (combo, (acc, agree), tried)."""
    if budget_points < 0:
        raise InputError(f"--budget must be >= 0 accuracy points, got {budget_points}")
    if not 0.0 <= min_agreement <= 1.0:
        raise InputError(f"--min-agreement must be within 0..1, got {min_agreement}")
    names = list(latency)
    grid = itertools.product(*(sorted(latency[c]) for c in names))
    combos = [dict(zip(names, ps, strict=True)) for ps in grid]

    def cost(combo: Combo) -> tuple[float, int]:
        return sum(latency[k][p] for k, p in combo.items()), sum(p != "fp32" for p in combo.values())

    combos.sort(key=cost)
    floor = reference - budget_points / 100.0 - 1e-12
    for tried, combo in enumerate(combos, start=1):
        acc, agree = score(combo)
        if acc >= floor and agree >= min_agreement - 1e-12:
            return combo, (acc, agree), tried
    fp32 = dict.fromkeys(names, "fp32")
    return fp32, score(fp32), len(combos)


def p50_ms(run: Callable[[], object], warmup: int = 5, repeat: int = 50) -> float:
    """Median wall time of `run()` in milliseconds (shared CpuTimer + bench statistics), warm-up excluded."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        run()
    timer, times = CpuTimer(), []
    for _ in range(repeat):
        timer.start()
        run()
        times.append(timer.stop())
    return summarize(times).p50_ms


def single_feeds(outputs: ComponentOutputs) -> dict[str, dict[str, np.ndarray]]:
    """A batch-1 real input per component (first sample with the modality; head: fp32 embeddings)."""
    feeds: dict[str, dict[str, np.ndarray]] = {}
    emb = outputs.fp32_embeddings()
    for b in outputs.batches:
        for j, m in enumerate(outputs.modalities):
            rows = np.flatnonzero(b.present[:, j] > 0)
            if m not in feeds and rows.size:
                feed = {k: v[rows[:1]] for k, v in b.feeds[m].items()}
                if "attention_mask" in feed:
                    n = max(int(feed["attention_mask"].sum()), 1)
                    feed = {k: v[:, :n] for k, v in feed.items()}
                feeds[m] = feed
    feeds[HEAD] = {embedding_name(m): emb[m][:1] for m in outputs.modalities}
    feeds[HEAD]["present"] = outputs.present[:1].astype(np.float32)
    return feeds


def measure_latency(bundle: Bundle, feeds: dict[str, dict[str, np.ndarray]], candidates: dict[str, list[str]],
                    threads: int | None, repeat: int) -> dict[str, dict[str, float]]:
    """{component: {precision: p50 ms}} with each component alone on ORT CPU."""
    from mmedge.runtime.backends import make_runner
    from mmedge.runtime.options import RunnerOptions

    out: dict[str, dict[str, float]] = {}
    for comp, precs in candidates.items():
        out[comp] = {}
        for p in precs:
            with make_runner(bundle, comp, p, RunnerOptions(threads=threads)) as runner:
                out[comp][p] = round(p50_ms(partial(runner.infer, feeds[comp]), repeat=repeat), 4)
    return out


def available_candidates(bundle: Bundle, wanted: tuple[str, ...] = CANDIDATES) -> dict[str, list[str]]:
    """{component: candidate precisions with an artifact in the bundle} in pipeline order."""
    comps = [*bundle.modalities, HEAD]
    return {c: [p for p in wanted if p in bundle.components[c].artifacts] for c in comps}


def auto_precision(bundle: Bundle | str | Path, data: str | None = None, split: str = "val", budget: float = 0.5,
                   min_agreement: float = 0.98, threads: int | None = None, repeat: int = 50,
                   limit: int | None = None) -> AutoResult:
    """Measure candidates, choose the fastest map within `budget` points of fp32, store it in bundle.json.

    One transaction: the writer lock is held and bundle.json re-read under it while measuring.
    """
    with update(bundle) as txn:
        result = _auto_precision(txn.bundle, data, split, budget, min_agreement, threads, repeat, limit)
    log.info("auto precision: %s (accuracy %.4f vs fp32 %.4f)", precision_label(result.choice), result.accuracy,
             result.reference_accuracy)
    return result


def _auto_precision(bundle: Bundle, data: str | None, split: str, budget: float, min_agreement: float,
                    threads: int | None, repeat: int, limit: int | None) -> AutoResult:
    spec = data_spec(bundle, data)
    dataset = resolve_dataset(spec, split, split_seed=bundle.split_seed)
    if limit is not None:
        dataset = dataset.subset(list(range(min(limit, len(dataset)))))
    outputs = ComponentOutputs(bundle, dataset, threads)
    labels = align_labels(Dataset(dataset.name, dataset.labels, outputs.samples), bundle.labels)

    candidates = available_candidates(bundle)
    ref_combo = dict.fromkeys(candidates, "fp32")
    ref_pred = outputs.logits(ref_combo).argmax(axis=1)

    def score(combo: Combo) -> tuple[float, float]:
        pred = outputs.logits(combo).argmax(axis=1)
        return float((pred == labels).mean()), float((pred == ref_pred).mean())

    latency = measure_latency(bundle, single_feeds(outputs), candidates, threads, repeat)
    reference = score(ref_combo)[0]
    choice, (acc, agree), tried = pick(latency, score, reference, budget, min_agreement)
    solo = {c: {p: round(score({**ref_combo, c: p})[0], 6) for p in ps} for c, ps in candidates.items()}
    result = AutoResult(choice, acc, reference, round(sum(latency[c][p] for c, p in choice.items()), 4),
                        round(sum(latency[c]["fp32"] for c in candidates), 4), budget, agree, min_agreement,
                        latency, solo, tried,
                        {"data": spec, "split": split, "samples": len(labels), "threads": threads,
                         "latency": "p50 ms, batch 1, component alone, onnxruntime CPU; combination = sum"})
    bundle.provenance["auto_precision"] = result.to_json()  # committed by the caller's transaction
    return result
