"""Before/after of the performance issue, side by side in ONE interleaved run on one bundle.

"Before" is the previous release's int8 recipe and executor, rebuilt with today's runtime so that both
run in one process: int8 conv encoders quantized with the former 25 % float-prefix cap (a copy of the
bundle made with `mmedge quantize --max-float-macs 0.25`), and concurrent encoders with one pool
thread per encoder while the caller waits, chosen by the former rule (best trial call only, 5 trials).
"After" is the bundle as built today with the default executor. PyTorch eager and ONNX Runtime fp32
run alongside as references. Every configuration runs on the same real test batches, round-robin,
rotated start, as `mmedge bench` does: a visit opens with one call right after another configuration
evicted this one's weights from the CPU caches (timed apart: `after switch`), then the measured call,
then a sequential call of the same configuration for per-component times (inside a concurrent call
the components slow each other down).

  python benchmarks/before_after.py export/bench-edge --rounds 150 --out /tmp/before_after.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmedge.bench.workload import build_workload, load_samples
from mmedge.data.manifest import resolve_dataset
from mmedge.runtime.executors import AutoConcurrency, Encoded, ThreadPoolEncoders, timed_infer
from mmedge.runtime.pipeline import Pipeline

MODALITIES = ["text", "image", "audio"]


class AllOnPool(ThreadPoolEncoders):
    """The former concurrent call: every encoder on its own pool thread, the caller waiting."""

    def _encode(self, calls: dict[str, Any], concurrent: bool) -> Encoded:
        if not concurrent:
            return {m: timed_infer(*args) for m, args in calls.items()}
        futures = {m: self._pool.submit(timed_infer, *args) for m, args in calls.items()}
        return {m: f.result() for m, f in futures.items()}


class BestCallOnly(AutoConcurrency):
    """The former decision rule: concurrent when its best trial call is 5 % faster (median ignored)."""

    def concurrent_wins(self, seq_calls: list[int], conc_calls: list[int]) -> bool:
        """Decide on the minimum only."""
        return min(conc_calls) < self.margin * min(seq_calls)


def before_bundle(bundle: Path, work: Path) -> Path:
    """A copy of `bundle` whose int8 artifacts use the former float-prefix cap."""
    copy = work / "before"
    shutil.copytree(bundle, copy)
    cli = Path(sys.executable).with_name("mmedge")  # the console script of this environment
    subprocess.run([str(cli), "quantize", str(copy), "--precision", "int8", "--max-float-macs", "0.25"],
                   check=True, stdout=subprocess.DEVNULL)
    return copy


def pipelines(after: Path, before: Path) -> dict[str, Pipeline]:
    """The configurations, by label."""
    pipes = {
        "PyTorch eager": Pipeline.from_bundle(after, backend="torch", threads=1),
        "ORT fp32": Pipeline.from_bundle(after, precision="fp32", threads=1),
        "ORT int8 after": Pipeline.from_bundle(after, precision="int8", threads=1),
    }
    old = Pipeline.from_bundle(before, precision="int8", threads=1)
    old.executor.close()
    old.executor = AllOnPool(old.runners, old.modalities, BestCallOnly(trials=5))
    pipes["ORT int8 before"] = old
    return pipes


def accuracy(pipe: Pipeline, split_seed: int) -> float:
    """Top-1 accuracy on the digits test split."""
    samples = resolve_dataset("digits", "test", 0, split_seed=split_seed).samples
    hits = 0
    for i in range(0, len(samples), 32):
        chunk = samples[i : i + 32]
        pred = pipe.predict_batch(chunk).probabilities.argmax(1)
        labels = [pipe.bundle.labels.index(s.label) if isinstance(s.label, str) else s.label for s in chunk]
        hits += int((pred == np.asarray(labels)).sum())
    return hits / len(samples)


def measure(pipes: dict[str, Pipeline], rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    """p50 (ms) of model compute (each configuration's executor) and of each component (a sequential call
    right after), round-robin over the configurations."""
    first = next(iter(pipes.values()))
    samples = load_samples("digits", "test", MODALITIES, 32, split_seed=first.bundle.split_seed)
    batches = build_workload(first, samples, 1, "digits", "test", MODALITIES).batches
    times: dict[str, dict[str, list[int]]] = {k: {} for k in pipes}
    names = list(pipes)
    for r in range(warmup + rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            batch = batches[r % len(batches)]
            start = time.perf_counter_ns()
            pipes[name].run_batch(batch)  # refills the caches the previous configuration evicted
            switch = time.perf_counter_ns() - start
            start = time.perf_counter_ns()
            pipes[name].run_batch(batch)  # the configuration's own executor choice: the headline
            model = time.perf_counter_ns() - start
            timings: dict[str, int] = {}
            pipes[name].run_batch(batch, timings, concurrent=False)  # per component, without contention
            if r >= warmup:
                for key, ns in {**timings, "model": model, "after_switch": switch}.items():
                    times[name].setdefault(key, []).append(ns)
    return {name: {k: float(np.median(v)) / 1e6 for k, v in t.items()} for name, t in times.items()}


def table(stats: dict[str, dict[str, float]], acc: dict[str, float]) -> str:
    """Markdown: per configuration, components and model compute, ratios to eager and ORT fp32."""
    eager, fp32 = stats["PyTorch eager"]["model"], stats["ORT fp32"]["model"]
    lines = ["| configuration | text | image | audio | head | model p50 ms | / eager | / ORT fp32 "
             "| after switch p50 ms | / eager | / ORT fp32 | accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cold_eager, cold_fp32 = stats["PyTorch eager"]["after_switch"], stats["ORT fp32"]["after_switch"]
    for name, s in stats.items():
        parts = " | ".join(f"{s.get(k, float('nan')):.2f}" for k in
                           ("encoder.text", "encoder.image", "encoder.audio", "fusion_head"))
        cold = s["after_switch"]
        lines.append(f"| {name} | {parts} | {s['model']:.2f} | {s['model'] / eager:.3f} | {s['model'] / fp32:.3f} "
                     f"| {cold:.2f} | {cold / cold_eager:.3f} | {cold / cold_fp32:.3f} | {100 * acc[name]:.2f} % |")
    return "\n".join(lines)


def main() -> None:
    """Build the 'before' copy, measure every configuration interleaved, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmedge-before-after-") as tmp:
        pipes = pipelines(args.bundle, before_bundle(args.bundle, Path(tmp)))
        acc = {name: accuracy(p, p.bundle.split_seed) for name, p in pipes.items()}
        load_start = os.getloadavg()[0]
        stats = measure(pipes, args.rounds, args.warmup)
        load_end = os.getloadavg()[0]
        for p in pipes.values():
            p.close()
    text = table(stats, acc) + f"\n\nLoad average (1 min) at start / end: {load_start:.2f} / {load_end:.2f}; " \
        f"{args.rounds} rounds after {args.warmup} warm-up, batch 1, 1 thread per session."
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"stats": stats, "accuracy": acc, "loadavg": [load_start, load_end],
                                        "rounds": args.rounds, "markdown": text}, indent=2))


if __name__ == "__main__":
    main()
