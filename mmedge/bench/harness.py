"""`mmedge bench`: a trtexec-grade latency harness for the whole multimodal pipeline.

Configurations (backend × precision × batch) are measured side by side in one run, interleaved
round-robin on real samples (see `mmedge.bench.measure`), then annotated with the cost model,
encoder concurrency, accuracy and power (see `mmedge.bench.annotate`). torch is imported only
by the torch backend, when a torch configuration is loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.bench import annotate
from mmedge.bench.costmodel import Cost
from mmedge.bench.envinfo import environment_record, peak_rss_mb
from mmedge.bench.measure import (
    HEADLINE,
    PHASES,
    SWITCH,
    Contender,
    LoopSettings,
    PhaseRunner,
    error_text,
    interleave,
)
from mmedge.bench.plan import (
    COMPILE,
    PEERS,
    VARIANT_PRECISION,
    BenchSpec,
    check_spec,
    load_precision,
    plan_configs,
    resolve_modalities,
    split_backend,
)
from mmedge.bench.report import BenchConfig, BenchReport, BenchResult, failed_stats
from mmedge.bench.stats import instability_warning, summarize
from mmedge.bench.summary import ordered_stages, write_outputs
from mmedge.bench.workload import Workload, build_workload, load_samples, median_batch, split_arg
from mmedge.bundle import Bundle
from mmedge.errors import InputError, MmedgeError
from mmedge.precision import artifact_key
from mmedge.runtime.backends import backend_info
from mmedge.runtime.options import usable_cores

if TYPE_CHECKING:
    from mmedge.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)
VARIANT_COST_NOTE = "not counted: ORT's quantize_dynamic graph is made at load"

__all__ = ["BenchSpec", "compare_latency", "run_bench"]


def _rss_mb() -> float | None:
    """Current resident set size in MiB (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.Process().memory_info().rss) / 2**20


def concurrency(mode: str) -> bool | str:
    """The Pipeline's `concurrent` for a bench mode: 'auto', True or False."""
    return "auto" if mode == "auto" else mode == "concurrent"


def load_pipeline(spec: BenchSpec, bundle: Bundle, backend: str,
                  precision: str) -> tuple[Pipeline | None, str | None, float | None]:
    """(pipeline, error, RSS growth in MiB) of one configuration; a peer's failure (torch.compile, a missing
    optional package) becomes an error row, mmedge's own configurations raise."""
    from mmedge.runtime.pipeline import Pipeline

    runner_backend, options = split_backend(backend)
    before = _rss_mb()
    try:
        pipe = Pipeline.from_bundle(
            bundle,
            runner_backend,
            load_precision(backend, precision),
            threads=spec.threads,
            concurrent=concurrency(spec.mode),
            **options,
        )
    except Exception as exc:
        if backend not in PEERS:
            raise
        return None, error_text(exc, "load"), None
    after = _rss_mb()
    return pipe, None, (after - before) if before is not None and after is not None else None


def _label(spec: BenchSpec, bundle: Bundle, backend: str, precision: str, batch: int, mods: list[str]) -> str:
    """Short row name: '<prefix><backend>/<precision>/b<batch>[/<modalities>]'."""
    label = f"{spec.label_prefix}{backend}/{precision}/b{batch}"
    return label if mods == list(bundle.modalities) else f"{label}/{'+'.join(mods)}"


def _result(c: Contender, batch: int, peak: tuple[float | None, float | None], costs: dict[str, Any],
            mods: list[str]) -> BenchResult:
    """BenchResult of one measured (or failed) contender."""
    samples = c.times.samples(HEADLINE)
    if c.error is not None or not samples:
        return BenchResult(c.config, failed_stats(batch), error=c.error or "no iteration completed")
    stats = summarize(samples, batch)
    stages = ordered_stages({k: v for k, v in c.times.summarize(batch).items() if k != HEADLINE})
    c.config.extra["compute"] = annotate.compute_figures(costs, stats, stages, *peak) if costs else None
    c.config.extra["concurrency"] = annotate.concurrency_figures(stages, mods)
    warning = instability_warning(stats, label="model latency")
    if warning:
        logger.info(warning)  # stored in the result; the CLI prints it
    total = sum(costs.values(), Cost(0, 0, {}))
    return BenchResult(
        c.config,
        stats,
        stages,
        [ns / 1e6 for ns in samples],
        cost=total if costs else None,  # None: not counted (no onnx), see summary.cost_note
        warnings=[warning] if warning else [],
    )


def _measure_batch(
    spec: BenchSpec,
    bundle: Bundle,
    loaded: dict[tuple[str, str], Any],
    batch: int,
    workload: Workload,
    mods: list[str],
    env: dict[str, Any],
) -> list[BenchResult]:
    """Interleave every configuration at one batch size and turn the contenders into results."""
    contenders = []
    for (backend, precision), (pipe, error, rss) in loaded.items():
        runner_backend, options = split_backend(backend)
        config = BenchConfig(
            backend,
            precision,
            batch,
            tuple(mods),
            pipe.threads if pipe is not None else None,  # what the pipeline runs ('auto' resolved)
            spec.mode,
            _label(spec, bundle, backend, precision, batch, mods),
            {
                "bundle": bundle.name,
                "preset": bundle.provenance.get("preset"),
                "runner_backend": runner_backend,
                "options": options,
                "rss_load_mb": rss,
            },
        )
        contenders.append(Contender(config, pipe, error=error))
    phases = PHASES if spec.stages else (SWITCH, HEADLINE)
    settings = LoopSettings(
        spec.warmup, spec.iters, spec.seconds, phases, concurrency(spec.mode), spec.timer_factory
    )
    rounds, wall = interleave(contenders, workload, settings)
    logger.info("batch %d: %d interleaved rounds in %.1f s", batch, rounds, wall)
    peak = env["cpu"].get("peak_gflops_estimate"), env["cpu"].get("peak_int8_gops_estimate")
    cost_cache: annotate.CostCache = {}
    results = []
    for c in contenders:
        costs: dict[str, Any] = {}
        if c.active and c.config.backend in VARIANT_PRECISION:  # timed a graph made at load, not an artifact
            c.config.extra["cost_note"] = VARIANT_COST_NOTE
        elif c.active:
            runner_backend = split_backend(c.config.backend)[0]
            fp32_only = backend_info(runner_backend).fp32_only
            prec = "fp32" if fp32_only else artifact_key(c.config.precision, runner_backend)
            costs = annotate.component_costs(bundle, prec, median_batch(workload), mods, cost_cache)
        results.append(_result(c, batch, peak, costs, mods))
    if spec.power is not False:
        _attach_power(spec, contenders, results, PhaseRunner(workload, settings))
    _ratios(results)
    return results


def _attach_power(
    spec: BenchSpec, contenders: list[Contender], results: list[BenchResult], runner: PhaseRunner
) -> None:
    """Power and energy per inference on a Jetson; elsewhere a note (or an error for --power)."""
    if not annotate.power_available() and spec.power is None:
        for r in results:
            r.config.extra["power_note"] = annotate.POWER_NOTE_ABSENT
        return
    records = annotate.measure_power(contenders, runner, spec.power_seconds)
    for r in results:
        r.power = records.get(r.config.key)


def _ratios(results: list[BenchResult]) -> None:
    """ratio_to_reference = p50 / p50 of the first configuration (at the same batch size)."""
    ref = results[0]
    for r in results:
        ok = not r.failed and not ref.failed and ref.stats.p50_ms > 0
        r.ratio_to_reference = r.stats.p50_ms / ref.stats.p50_ms if ok else None


def _attach_accuracy(
    spec: BenchSpec,
    bundle: Bundle,
    loaded: dict[tuple[str, str], Any],
    results: list[BenchResult],
    mods: list[str],
) -> None:
    """Accuracy of each configuration's pipeline on the split (torch.compile: the eager model's)."""
    from mmedge.data.manifest import resolve_dataset

    dataset = resolve_dataset(spec.data, split_arg(spec.split), spec.seed, split_seed=bundle.split_seed)
    key = annotate.accuracy_key(bundle.modalities, mods)
    scores: dict[tuple[str, str], float] = {}
    for (backend, precision), (pipe, _, _) in loaded.items():
        if pipe is not None and backend != COMPILE:
            scores[(backend, precision)] = annotate.pipeline_accuracy(pipe, dataset, backend, precision, key)
    for r in results:
        name = "torch" if r.config.backend == COMPILE else r.config.backend
        if not r.failed:
            r.accuracy = scores.get((name, r.config.precision))
            r.accuracy_metric = f"accuracy ({spec.data}:{spec.split}, {key})"
            if r.config.backend == COMPILE:
                r.config.extra["accuracy_note"] = "the eager model's accuracy (same weights)"


def _env(spec: BenchSpec, bundle: Bundle, mods: list[str], plan: list[tuple[str, str]]) -> dict[str, Any]:
    """The environment record plus this run's settings."""
    env = environment_record(bundle.root)
    env["bench"] = {
        "bundle": bundle.name,
        "preset": bundle.provenance.get("preset"),
        "modalities": mods,
        "configs": [f"{b}/{p}" for b, p in plan],
        "batches": spec.batches,
        "warmup": spec.warmup,
        "iters": None if spec.seconds else spec.iters,
        "seconds": spec.seconds,
        "threads": spec.threads,
        "threads_resolved": None,  # filled once pipelines are loaded
        "mode": spec.mode,
        "stages": spec.stages,
        "data": f"{spec.data}:{spec.split}",
        "pool": spec.pool,
        "clock": getattr(spec.timer_factory, "name", getattr(spec.timer_factory, "__name__", "?")),
        "interleaved": "round-robin, rotated start, per phase",
        "headline": "model compute",
        "loadavg_start": _loadavg(),
        "usable_cores": usable_cores(),
    }
    return env


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute system load averages (None where the OS has none): a busy machine distorts latency."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_bench(spec: BenchSpec) -> BenchReport:
    """Measure every configuration of `spec` side by side; write JSON/report files if asked."""
    check_spec(spec)
    bundle = Bundle.coerce(spec.bundle)  # loaded and verified once for every configuration
    mods = resolve_modalities(bundle, spec.modalities)
    plan = plan_configs(spec, bundle, mods)
    if spec.power and not annotate.power_available():
        raise InputError(f"--power: {annotate.POWER_NOTE_ABSENT}")
    samples = load_samples(spec.data, spec.split, mods, spec.pool, spec.seed, split_seed=bundle.split_seed)
    env = _env(spec, bundle, mods, plan)
    if spec.cold_start:  # first, in fresh processes, before this one fills the page cache further
        from mmedge.bench.coldstart import cold_starts

        env["bench"]["cold_start"] = cold_starts(bundle.root, spec.cold_start, mods, spec.threads, spec.cold_start_runs,
                                                 spec.data, spec.split, bundle.split_seed)
    loaded: dict[tuple[str, str], Any] = {}
    try:
        for backend, precision in plan:
            loaded[(backend, precision)] = load_pipeline(spec, bundle, backend, precision)
        base = next((p for p, _, _ in loaded.values() if p is not None), None)
        env["bench"]["threads_resolved"] = base.threads if base is not None else None
        if base is None:
            raise MmedgeError(
                "no configuration could be loaded: "
                + "; ".join(f"{b}/{p}: {e}" for (b, p), (_, e, _) in loaded.items())
            )
        results: list[BenchResult] = []
        for batch in spec.batches:
            workload = build_workload(base, samples, batch, spec.data, spec.split, mods)
            results += _measure_batch(spec, bundle, loaded, batch, workload, mods, env)
        if spec.accuracy:
            _attach_accuracy(spec, bundle, loaded, results, mods)
    finally:
        for pipe, _, _ in loaded.values():
            if pipe is not None:
                pipe.close()
    env["peak_rss_mb"] = peak_rss_mb()
    env["bench"]["loadavg_end"] = _loadavg()
    title = spec.title or f"mmedge bench: {bundle.name} ({bundle.provenance.get('preset', '?')} preset)"
    report = BenchReport(env, results, reference=results[0].config.key, title=title)
    write_outputs(report, spec.json_path, spec.report_dir)
    return report


def compare_latency(
    bundle: str | Path | Bundle,
    configs: list[tuple[str, str]],
    batch: int = 1,
    warmup: int = 10,
    iters: int = 100,
    threads: int | None = None,
    modalities: list[str] | None = None,
    **options: Any,
) -> BenchReport:
    """Latency of `configs` side by side at one batch size; the first config is the reference."""
    if not configs:
        raise InputError("compare_latency needs at least one (backend, precision) configuration")
    spec = BenchSpec(
        bundle if isinstance(bundle, Bundle) else Path(bundle),
        configs=list(configs),
        batches=[batch],
        warmup=warmup,
        iters=iters,
        threads=threads,
        modalities=modalities,
        **options,
    )
    return run_bench(spec)
