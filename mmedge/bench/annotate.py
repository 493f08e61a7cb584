"""What a latency number means: cost model (params, MACs, GFLOP/s, % of peak), encoder concurrency,
accuracy of each configuration, and Jetson power/energy (tegrastats)."""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

from mmedge.bench.costmodel import Cost, count_cost
from mmedge.bench.stats import LatencyStats
from mmedge.errors import MissingDependencyError
from mmedge.specs import HEAD

if TYPE_CHECKING:
    from mmedge.bench.measure import Contender, PhaseRunner
    from mmedge.bundle import Bundle
    from mmedge.data.preprocess import Batch
    from mmedge.data.sample import Dataset
    from mmedge.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)

CostCache = dict[tuple[str, str, tuple[tuple[str, tuple[int, ...]], ...]], Cost]
POWER_NOTE_ABSENT = "not measured: tegrastats is not on PATH (power is measured on NVIDIA Jetson only)"


def component_shapes(bundle: Bundle, batch: Batch, modalities: list[str]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Concrete input shapes of each benchmarked encoder and of the fusion head for this batch."""
    shapes = {m: {name: tuple(int(d) for d in arr.shape) for name, arr in batch.feeds[m].items()} for m in modalities}
    head = bundle.components[HEAD]
    shapes[HEAD] = {s.name: tuple(int(d) for d in s.resolve({"batch": len(batch)})) for s in head.inputs}
    return shapes


def component_costs(
    bundle: Bundle, precision: str, batch: Batch, modalities: list[str], cache: CostCache | None = None
) -> dict[str, Cost]:
    """Cost (params, MACs) of each component's ONNX at `precision`, at this batch's concrete shapes."""
    cache = {} if cache is None else cache
    out: dict[str, Cost] = {}
    for comp, shapes in component_shapes(bundle, batch, modalities).items():
        key = (comp, precision, tuple(sorted(shapes.items())))
        if key not in cache:
            try:
                cache[key] = count_cost(bundle.artifact_path(comp, precision), shapes)
            except MissingDependencyError as exc:  # the runtime install has no onnx: latency still counts
                logger.info("cost model not counted: %s", exc)
                return {}
        out[comp] = cache[key]
    return out


def _gflops(cost: Cost, ms: float) -> float | None:
    """Achieved GFLOP/s for `cost`'s FLOPs done in `ms` milliseconds."""
    return cost.flops / (ms * 1e-3) / 1e9 if ms > 0 else None


def mixed_peak_ms(cost: Cost, peak_gflops: float | None, peak_int8_gops: float | None) -> float | None:
    """Fastest possible time (ms) for `cost`: its int8 MACs at the int8 peak, the rest at the fp32 peak."""
    if not peak_gflops or not peak_int8_gops:
        return None
    quantized = 2 * min(cost.quantized_macs, cost.macs)
    return 1e3 * (quantized / (peak_int8_gops * 1e9) + (cost.flops - quantized) / (peak_gflops * 1e9))


def compute_figures(
    costs: dict[str, Cost], stats: LatencyStats, stages: dict[str, LatencyStats], peak_gflops: float | None,
    peak_int8_gops: float | None = None,
) -> dict[str, Any]:
    """GFLOP per call, achieved GFLOP/s at p50, % of the estimated fp32 peak and % of the precision-aware
    peak (int8 MACs at the int8 peak, the rest at fp32's), in total and per component."""
    total = sum(costs.values(), Cost(0, 0, {}))
    achieved = _gflops(total, stats.p50_ms)
    ideal = mixed_peak_ms(total, peak_gflops, peak_int8_gops)
    by_component: dict[str, Any] = {}
    for comp, cost in costs.items():
        stage = stages.get(HEAD if comp == HEAD else f"encoder.{comp}")
        comp_gflops = _gflops(cost, stage.p50_ms) if stage is not None else None
        by_component[comp] = {
            "params": cost.params,
            "macs": cost.macs,
            "quantized_macs": cost.quantized_macs,
            "p50_ms": stage.p50_ms if stage else None,
            "achieved_gflops": comp_gflops,
            "pct_of_mixed_peak": (100.0 * ideal_c / stage.p50_ms if stage is not None and stage.p50_ms > 0
                                  and (ideal_c := mixed_peak_ms(cost, peak_gflops, peak_int8_gops)) is not None
                                  else None),
            "input_shapes": cost.input_shapes,
            "uncounted": cost.uncounted,
        }
    return {
        "gflop_per_call": total.flops / 1e9,
        "achieved_gflops": achieved,
        "peak_gflops": peak_gflops,
        "pct_of_peak": 100.0 * achieved / peak_gflops if achieved is not None and peak_gflops else None,
        "peak_int8_gops": peak_int8_gops,
        "pct_of_mixed_peak": 100.0 * ideal / stats.p50_ms if ideal is not None and stats.p50_ms > 0 else None,
        "by_component": by_component,
    }


def concurrency_figures(stages: dict[str, LatencyStats], modalities: list[str]) -> dict[str, Any] | None:
    """Concurrent encoders' p50 vs the sum and vs the slowest of the encoders run one by one (and the
    pipeline's own choice, `auto`, vs sequential)."""
    per = [stages[f"encoder.{m}"].p50_ms for m in modalities if f"encoder.{m}" in stages]
    conc, seq = stages.get("encoders.concurrent"), stages.get("encoders.sequential")
    auto = stages.get("encoders.auto")
    if conc is None or not per:
        return None
    total, slowest = sum(per), max(per)
    return {
        "auto_p50_ms": auto.p50_ms if auto else None,
        "auto_over_sequential": auto.p50_ms / seq.p50_ms if auto and seq and seq.p50_ms > 0 else None,
        "concurrent_p50_ms": conc.p50_ms,
        "sequential_p50_ms": seq.p50_ms if seq else None,
        "sum_of_encoders_p50_ms": total,
        "slowest_encoder_p50_ms": slowest,
        "concurrent_over_sum": conc.p50_ms / total if total > 0 else None,
        "concurrent_over_slowest": conc.p50_ms / slowest if slowest > 0 else None,
    }


def accuracy_key(bundle_modalities: list[str], modalities: list[str]) -> str:
    """The evaluate_subsets key for the benchmarked modalities ('all' = every modality as given)."""
    if list(modalities) == list(bundle_modalities):
        return "all"
    return "+".join(m for m in bundle_modalities if m in modalities)


def pipeline_accuracy(pipe: Pipeline, dataset: Dataset, backend: str, precision: str, key: str) -> float:
    """Accuracy of one loaded pipeline on `dataset` under the `key` modality subset."""
    from mmedge.eval.evaluate import evaluate_pipeline

    return float(evaluate_pipeline(pipe, dataset, backend, precision).subsets[key]["accuracy"])


def power_available() -> bool:
    """Whether NVIDIA's tegrastats is on PATH (a Jetson)."""
    return shutil.which("tegrastats") is not None


def measure_power(
    contenders: list[Contender], runner: PhaseRunner, seconds: float, idle_s: float | None = None
) -> dict[str, dict[str, Any]]:
    """Module power while each configuration runs alone for `seconds`, and energy per inference."""
    from mmedge.bench.tegrastats import TegrastatsMonitor

    out: dict[str, dict[str, Any]] = {}
    with TegrastatsMonitor(interval_ms=100) as mon:
        t0 = time.monotonic()
        time.sleep(min(1.0, seconds) if idle_s is None else idle_s)
        idle = mon.samples_between(t0, time.monotonic())
        for c in (c for c in contenders if c.active):
            n, start = 0, time.monotonic()
            while time.monotonic() - start < seconds:
                runner.run("model", c, n % len(runner.workload), record=False)
                n += 1
            end = time.monotonic()
            out[c.config.key] = power_record(
                mon.samples_between(start, end), idle, end - start, n, runner.workload.batch
            )
    return out


def power_record(samples: list[Any], idle: list[Any], duration_s: float, calls: int, batch: int) -> dict[str, Any]:
    """Mean/idle power and energy per call and per item from tegrastats samples of one window."""
    from mmedge.bench.tegrastats import energy_per_inference, mean_power_mw, power_source

    record: dict[str, Any] = {
        "duration_s": duration_s,
        "calls": calls,
        "batch": batch,
        "samples": len(samples),
    }
    try:
        mean = mean_power_mw(samples)
    except ValueError as exc:
        return {**record, "mean_mw": None, "note": str(exc)}
    try:
        baseline = mean_power_mw(idle)
    except ValueError:
        baseline = None
    per_call = energy_per_inference(samples, duration_s, calls)
    dynamic = energy_per_inference(samples, duration_s, calls, baseline) if baseline is not None else None
    return {
        **record,
        "mean_mw": mean,
        "idle_mw": baseline,
        "source": power_source(samples[0]),
        "energy_mj_per_inference": per_call,
        "energy_mj_per_item": per_call / batch,
        "dynamic_energy_mj_per_inference": dynamic,
        "note": "module power (tegrastats); energy = mean power x time / calls; dynamic = minus idle",
    }
