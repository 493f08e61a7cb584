"""`mmedge quantize`: fp16 / int8 (QDQ) artifacts per component, or an automatic per-component choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.choices import CalibrationMethod, QuantPrecision, QuantTarget, Rounding
from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json
from mmedge.cli.progress import status
from mmedge.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the `quantize` command."""
    app.command("quantize")(quantize)


def split_components(value: str | None) -> list[str] | None:
    """'text,image' → ['text', 'image'] (None: every component)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@handle_errors
def quantize(
    bundle: Path = typer.Argument(..., help="Bundle directory (from mmedge export)."),
    precision: QuantPrecision | None = typer.Option(None, help="Precision of the new artifacts."),
    calib: str | None = typer.Option(None, help="Calibration/parity data: 'digits' or a JSONL/CSV manifest "
                                                "(default: the bundle's data, else digits)."),
    samples: int = typer.Option(128, min=1, help="Calibration samples (train split)."),
    method: CalibrationMethod = typer.Option("minmax", help="How int8 activation ranges are calibrated."),
    rounding: Rounding = typer.Option("gptq", help="int8 weight rounding: gptq (error-compensating, uses the "
                                              "calibration data) | nearest."),
    max_float_macs: float | None = typer.Option(None, help="int8 cpu, conv nets: largest share of MACs "
                                                "(0..1) the leading layers kept float may hold; 0 = none "
                                                "(default 0.5; the search picks the count)."),
    target: QuantTarget = typer.Option("cpu", help="int8 flavour: cpu (fastest on ONNX Runtime CPU) | tensorrt "
                                           "(symmetric, per-channel; checked)."),
    components: str | None = typer.Option(None, help="Comma list, e.g. text,image (default: all)."),
    auto: bool = typer.Option(False, "--auto", help="Choose the fastest per-component precision map "
                                                    "within --budget."),
    budget: float = typer.Option(0.5, help="--auto: allowed accuracy drop vs fp32, in points."),
    min_agreement: float = typer.Option(0.98, help="--auto: least top-1 agreement with fp32 (0..1)."),
    threads: int | None = typer.Option(None, min=1, help="ONNX Runtime intra-op threads."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add fp16 or int8 artifacts to a bundle (hashes, settings, parity vs fp32 on real samples)."""
    from mmedge.bundle import Bundle
    from mmedge.quantize.run import QuantizeOptions
    from mmedge.workflow import quantize as run_quantize

    if not auto and precision is None:
        raise InputError("give --precision fp16|int8, or --auto to choose a precision per component")
    opts = QuantizeOptions(precision or "int8", target, calib, samples, method, split_components(components),
                           threads=threads, rounding=rounding, max_float_macs=max_float_macs)
    loaded = Bundle.load(bundle)
    with status("quantizing") as step:
        outcome = run_quantize(loaded, opts, auto=auto, budget=budget, min_agreement=min_agreement,
                               progress=lambda s: step.update(s))
    if as_json:
        print_json(outcome.to_json())
        return
    results, chosen = outcome.results, outcome.chosen
    if results:
        console.print(artifact_table(results, f"{bundle}: new artifacts"))
    if chosen is not None:
        console.print(candidate_table(chosen))
        console.print(f"chosen: {','.join(f'{c}={p}' for c, p in chosen.choice.items())} — accuracy "
                      f"{chosen.accuracy:.4f} (fp32 {chosen.reference_accuracy:.4f}, budget −{budget:g} pt), "
                      f"agreement {100 * chosen.agreement:.1f}%, "
                      f"{chosen.latency_ms:.3f} ms vs fp32 {chosen.reference_latency_ms:.3f} ms; "
                      "stored in bundle.json")


def artifact_table(results: list[Any], title: str) -> Table:
    """Component, precision, file, size, parity vs fp32, scheme."""
    table = Table(title=title)
    for col in ("component", "precision", "file", "size", "max |Δ| vs fp32", "mean |Δ|", "scheme"):
        table.add_column(col)
    for r in results:
        scheme = r.settings.get("scheme")
        name = scheme["name"] if isinstance(scheme, dict) else r.settings.get("converter", "")
        table.add_row(r.component, r.precision, r.file, f"{r.bytes / 1024:.0f} KiB",
                      f"{r.parity['max_abs_diff']:.3g}", f"{r.parity['mean_abs_diff']:.3g}", name)
    return table


def candidate_table(result: Any) -> Table:
    """Per component and precision: p50 latency alone, accuracy with only it changed, chosen mark."""
    table = Table(title=f"--auto candidates (val accuracy, fp32 {result.reference_accuracy:.4f})")
    for col in ("component", "precision", "p50 ms (batch 1)", "accuracy (others fp32)", "chosen"):
        table.add_column(col, justify="left" if col in ("component", "precision") else "right")
    for comp, per in result.latency.items():
        for p, ms in per.items():
            table.add_row(comp, p, f"{ms:.4f}", f"{result.solo_accuracy[comp][p]:.4f}",
                          "✓" if result.choice.get(comp) == p else "")
    return table
