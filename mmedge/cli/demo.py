"""`mmedge demo`: the whole path on the built-in dataset, ending in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json
from mmedge.cli.progress import status


def register(app: typer.Typer) -> None:
    """Add the `demo` command."""
    app.command("demo")(demo)


@handle_errors
def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="Where the runs go."),
    out: Path = typer.Option(Path("export/demo"), help="Where the bundle goes."),
    epochs: int | None = typer.Option(None, min=1, help="Override the preset's epoch count."),
    iters: int = typer.Option(200, min=10, help="Latency iterations per backend."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """digits → train → export → eval → latency (PyTorch vs ONNX Runtime) → final table."""
    from mmedge.workflow import run_demo

    with status("demo") as step:
        result = run_demo(workdir, out, epochs, iters, step=lambda msg: step.update(msg))
    if as_json:
        print_json({"accuracy": result.accuracy, "standalone": result.standalone, "parity": result.parity,
                    "latency": result.latency.to_json(), "seconds": result.seconds})
        return
    console.print(accuracy_table(result))
    console.print(latency_table(result.latency))
    p = result.parity
    console.print(f"ONNX Runtime vs PyTorch on {p['n']} test samples: accuracy {p['onnxruntime_accuracy']:.4f} vs "
                  f"{p['torch_accuracy']:.4f}, max |Δ logits| {p['max_abs_logit_diff']:.2e}, identical argmax: "
                  f"{p['argmax_identical']}")
    console.print(f"bundle: {result.bundle}   total time: {result.seconds['total']:.0f}s")


def accuracy_table(result: Any) -> Table:
    """Fused accuracy per modality subset next to each modality's standalone model."""
    table = Table(title="digits test split — accuracy")
    for col in ("modalities", "fused model", "standalone model", "fused / standalone"):
        table.add_column(col, justify="left" if col == "modalities" else "right")
    for subset, fig in result.accuracy.items():
        alone = result.standalone.get(subset)
        ratio = f"{fig['accuracy'] / alone:.2f}" if alone else ""
        table.add_row(subset, f"{fig['accuracy']:.4f}", f"{alone:.4f}" if alone else "", ratio)
    return table


def latency_table(report: Any) -> Table:
    """p50/p99 per backend with the ratio to PyTorch eager."""
    table = Table(title="latency, batch 1, 1 thread, model compute (ms)")
    for col in ("backend", "p50", "p99", "p50 / PyTorch eager"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in report.results:
        ratio = f"{r.ratio_to_reference:.2f}×" if r.ratio_to_reference is not None else ""
        table.add_row(f"{r.config.backend} {r.config.precision}", f"{r.stats.p50_ms:.3f}", f"{r.stats.p99_ms:.3f}",
                      ratio)
    return table
