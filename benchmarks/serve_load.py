"""Load test of `mmedge serve`: concurrent tritonclient clients (1, 4, 16) vs the in-process Pipeline.

    python benchmarks/serve_load.py BUNDLE [--url 127.0.0.1:8001] [--concurrency 1,4,16] [--requests 200]
        [--seconds 20] [--protocol grpc|http] [--max-batch 16] [--max-queue-delay-us 1000] [--instances 1]
        [--text T] [--image FILE] [--audio FILE] [--out results.json]

Without --url it starts `mmedge serve` on free local ports with the given batching settings and stops
it at the end; with --url it drives that already running local server. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mmedge.errors import MmedgeError
from mmedge.serve.loadtest import LoadReport, LoadSettings, measure
from mmedge.serve.server import ServeOptions


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path)
    p.add_argument("--url", help="a running local server (host:port of its --protocol endpoint)")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--requests", type=int, default=200, help="per level, at most")
    p.add_argument("--seconds", type=float, default=20.0, help="per level, at most")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-queue-delay-us", type=int, default=1000)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--text", default="seven")
    p.add_argument("--image", type=Path)
    p.add_argument("--audio", type=Path)
    p.add_argument("--out", type=Path, help="write the JSON report here")
    return p.parse_args(argv)


def render(report: LoadReport) -> Table:
    """The side-by-side table."""
    table = Table(title=f"serve load test — batching {report.batching}; load avg {report.loadavg}")
    for col in ("target", "concurrency", "requests", "errors", "req/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for r in sorted(report.results, key=lambda r: (r.concurrency, r.target)):
        table.add_row(r.target, str(r.concurrency), str(r.requests), str(r.errors), f"{r.throughput:.1f}",
                      f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}")
    return table


def main(argv: list[str]) -> int:
    """Run the load test; 0 on success, the error's exit code otherwise."""
    args = parse_args(argv)
    try:
        levels = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
        settings = LoadSettings(concurrency=levels, requests=args.requests, seconds=args.seconds,
                                protocol=args.protocol)
        options = ServeOptions(backend=args.backend, precision=args.precision, threads=args.threads,
                               max_batch=args.max_batch, max_queue_delay_us=args.max_queue_delay_us,
                               instances=args.instances)
        report = measure(args.bundle, (args.text or None, args.image, args.audio), options, settings, url=args.url)
    except (MmedgeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    Console().print(render(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report.to_json(), indent=2))
        tmp.replace(args.out)  # atomic: a reader never sees half a report
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
