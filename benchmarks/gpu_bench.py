"""Short GPU benchmark: TensorRT fp32/fp16 engines vs ONNX Runtime CPU, per component and for
the whole pipeline (sequential vs concurrent encoders), with GPU stage times from CUDA events.

    python benchmarks/gpu_bench.py [BUNDLE] [--iters 50] [--batch 1] [--json out.json]

Without BUNDLE it benchmarks a small synthetic bundle (tests/gpu_utils.py). Runs from
a checkout without installing mmedge. Prints one table; with --json (or $OUT set) also writes
the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmedge.bundle import Bundle  # noqa: E402
from mmedge.errors import MmedgeError  # noqa: E402
from mmedge.specs import HEAD, TensorSpec  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "bundle", nargs="?", type=Path, help="bundle folder (default: a synthetic tiny bundle)"
    )
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cuda-graph", action="store_true", help="replay encoders' compute as CUDA graphs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--work", type=Path, default=Path("runs/gpu_bench"), help="where a synthetic bundle goes"
    )
    return parser.parse_args(argv)


def synthetic_bundle(work: Path) -> Path:
    """The tests' tiny bundle (real ONNX files, all three modalities)."""
    sys.path.insert(0, str(REPO / "tests" / "backends"))
    import gpu_utils

    return gpu_utils.make_tiny_bundle(work / "bundle")


def axis_values(specs: list[TensorSpec], batch: int) -> dict[str, int]:
    """Concrete value per named axis: `batch` clipped to its range, every other axis at its opt."""
    values: dict[str, int] = {}
    for spec in specs:
        for axis in (d for d in spec.shape if isinstance(d, str)):
            lo, opt, hi = spec.ranges.get(axis, (1, 1, 1))
            values[axis] = min(max(batch, lo), hi) if axis == "batch" else opt
    return values


def synth_feed(specs: list[TensorSpec], batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of the right names, dtypes and shapes (token ids < 30, masks and `present` all ones)."""
    axes = axis_values(specs, batch)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = spec.resolve(axes)
        if spec.dtype == "int64":
            ones = "mask" in spec.name
            feed[spec.name] = (
                np.ones(shape, np.int64) if ones else rng.integers(0, 30, shape).astype(np.int64)
            )
        elif spec.name == "present":
            feed[spec.name] = np.ones(shape, np.float32)
        else:
            feed[spec.name] = rng.normal(size=shape).astype(spec.dtype)
    return feed


def timed(fn: Callable[[], Any], iters: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of `iters` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def med(values: list[float]) -> float:
    """Median (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def ort_cpu_component(
    bundle: Bundle, name: str, precision: str, feed: dict[str, np.ndarray], args: Any
) -> dict:
    """ONNX Runtime CPU latency of one component, and its outputs for the accuracy check."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(bundle.artifact_path(name, precision)), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, feed), strict=True))
    times = timed(lambda: session.run(names, feed), args.iters, args.warmup)
    return {"host_ms": med(times), "outputs": outputs}


def trt_component(runner: Any, feed: dict[str, np.ndarray], args: Any) -> dict:
    """TensorRT latency (host wall time and GPU stages) of one opened runner."""
    outputs = runner.infer(feed)
    stages: list[Any] = []

    def once() -> None:
        runner.infer(feed)
        stages.append(runner.last_timings)

    times = timed(once, args.iters, args.warmup)
    stages = stages[args.warmup :]
    return {
        "host_ms": med(times),
        "gpu_ms": med([s.gpu_ms for s in stages]),
        "h2d_ms": med([s.h2d_ms for s in stages]),
        "compute_ms": med([s.compute_ms for s in stages]),
        "d2h_ms": med([s.d2h_ms for s in stages]),
        "enqueue_ms": med([s.enqueue_ms for s in stages]),
        "outputs": outputs,
    }


def pipeline_feeds(
    bundle: Bundle, feeds: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """Encoder feeds plus the head's host inputs (present mask, zeros for modalities without encoder)."""
    produced = {o.name for n, c in bundle.components.items() if n != HEAD for o in c.outputs}
    head = {k: v for k, v in feeds[HEAD].items() if k not in produced}
    return {**{n: f for n, f in feeds.items() if n != HEAD}, HEAD: head}


def bench_precision(bundle: Bundle, precision: str, feeds: dict, args: Any, report: dict) -> None:
    """Build (or reuse) the engines of one precision and measure components and pipeline."""
    from mmedge.runtime.backends.tensorrt.build import BuildOptions, build_bundle
    from mmedge.runtime.backends.tensorrt.executor import run_concurrent, run_sequential
    from mmedge.runtime.backends.tensorrt.runner import make_runner

    built = build_bundle(bundle.root, BuildOptions(precision=precision))
    report["builds"][precision] = [
        {
            "component": r.component,
            "cached": r.cached,
            "seconds": round(r.seconds, 2),
            "plan_mb": round(r.plan_bytes / 1e6, 2),
        }
        for r in built.results
    ]
    runners = {
        n: make_runner(bundle, n, precision, cuda_graph=args.cuda_graph and n != HEAD)
        for n in bundle.components
    }
    try:
        for runner in runners.values():
            runner.open()
        for name, runner in runners.items():
            cpu = report["components"][name].setdefault(f"ort_cpu_{precision}", {})
            if not cpu:
                cpu.update(ort_cpu_component(bundle, name, precision, feeds[name], args))
            trt = trt_component(runner, feeds[name], args)
            diff = max(float(np.max(np.abs(trt["outputs"][k] - v))) for k, v in cpu["outputs"].items())
            report["components"][name][f"trt_{precision}"] = {**trt, "max_abs_diff_vs_cpu": diff}
        pfeeds = pipeline_feeds(bundle, feeds)
        for mode, fn in (("sequential", run_sequential), ("concurrent", run_concurrent)):
            report["pipeline"][f"{precision}/{mode}"] = bench_pipeline(fn, runners, pfeeds, args)
    finally:
        for runner in runners.values():
            runner.close()


def bench_pipeline(fn: Callable[..., Any], runners: dict, feeds: dict, args: Any) -> dict[str, float]:
    """Host time and GPU span (first encoder start to head end) of one pipeline mode."""
    results: list[Any] = []
    times = timed(lambda: results.append(fn(runners, feeds)), args.iters, args.warmup)
    spans = [r.gpu_span_ms for r in results[args.warmup :]]
    return {"host_ms": med(times), "gpu_span_ms": med(spans)}


def print_report(report: dict, precisions: list[str]) -> None:
    """The summary table."""
    env = report.get("environment") or {}
    print(
        f"\nGPU benchmark: {report['bundle']} batch={report['batch']} iters={report['iters']} "
        f"TensorRT {env.get('tensorrt', '-')} on {env.get('gpu', '-')} "
        f"(cc {env.get('compute_capability', '-')})"
    )
    print(
        "ms, median; host = wall time per call; gpu = H2D start → D2H end (CUDA events); "
        "|Δ| = max abs diff vs ORT CPU, same precision"
    )
    print(
        f"{'component':<12} {'prec':<5} {'ORT CPU':>8} {'TRT host':>9} {'gpu':>7} {'h2d':>6} {'comp':>6} "
        f"{'d2h':>6} {'enq':>6} {'|Δ|':>8}"
    )
    for name, row in report["components"].items():
        for p in precisions:
            cpu = row.get(f"ort_cpu_{p}", {}).get("host_ms", float("nan"))
            t = row.get(f"trt_{p}")
            if t is None:
                print(f"{name:<12} {p:<5} {cpu:>8.3f} {'-':>9}")
                continue
            print(
                f"{name:<12} {p:<5} {cpu:>8.3f} {t['host_ms']:>9.3f} {t['gpu_ms']:>7.3f} {t['h2d_ms']:>6.3f} "
                f"{t['compute_ms']:>6.3f} {t['d2h_ms']:>6.3f} {t['enqueue_ms']:>6.3f} "
                f"{t['max_abs_diff_vs_cpu']:>8.1e}"
            )
    print(f"\n{'pipeline':<22} {'host ms':>9} {'gpu span ms':>12}")
    for key, row in report["pipeline"].items():
        print(f"{key:<22} {row['host_ms']:>9.3f} {row['gpu_span_ms']:>12.3f}")
    for p in precisions:
        seq, conc = report["pipeline"].get(f"{p}/sequential"), report["pipeline"].get(f"{p}/concurrent")
        if seq and conc:
            print(f"{p}: concurrent/sequential host time = {conc['host_ms'] / seq['host_ms']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 on an mmedge error, 2 without TensorRT/GPU."""
    args = parse_args(argv)
    from mmedge.runtime.backends.tensorrt.env import probe_environment

    root = args.bundle or synthetic_bundle(args.work)
    bundle = Bundle.load(root)
    from mmedge.runtime.backends.tensorrt.cache import engine_precision  # "int8" -> "int8-trt" (TensorRT's QDQ)

    wanted = [engine_precision(p) for p in args.precisions.split(",")]
    precisions = [p for p in wanted if all(p in c.artifacts for c in bundle.components.values())]
    rng = np.random.default_rng(0)
    feeds = {n: synth_feed(c.inputs, args.batch, rng) for n, c in bundle.components.items()}
    report: dict[str, Any] = {
        "bundle": str(root),
        "batch": args.batch,
        "iters": args.iters,
        "builds": {},
        "components": {n: {} for n in bundle.components},
        "pipeline": {},
    }
    try:
        report["environment"] = probe_environment().to_json()
    except MmedgeError as exc:
        print(f"cannot benchmark TensorRT here: {exc}")
        return 2
    try:
        for precision in precisions:
            bench_precision(bundle, precision, feeds, args, report)
    except MmedgeError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        print_report(report, precisions)
        target = args.json or (Path(os.environ["OUT"]) / "gpu_bench.json" if os.environ.get("OUT") else None)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            strip = {k: v for k, v in report.items() if k != "components"}
            strip["components"] = {
                n: {k: {m: x for m, x in v.items() if m != "outputs"} for k, v in row.items()}
                for n, row in report["components"].items()
            }
            target.write_text(json.dumps(strip, indent=2, default=float))
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
