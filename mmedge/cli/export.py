"""`mmedge export`: a training run → a bundle of per-component ONNX files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json
from mmedge.cli.progress import status


def register(app: typer.Typer) -> None:
    """Add the `export` command."""
    app.command("export")(export)


@handle_errors
def export(
    run: Path = typer.Argument(..., help="Run directory written by mmedge train."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory, e.g. export/NAME."),
    data: str | None = typer.Option(None, help="Data for the parity check (default: the run's data)."),
    samples: int = typer.Option(64, min=1, help="Real samples for the parity check."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export encoders and fusion head to ONNX, check each against PyTorch, write bundle.json."""
    from mmedge.exporters.export_run import export_run

    with status("exporting") as step:
        bundle = export_run(run, out, data=data, samples=samples, progress=lambda c: step.update(f"exporting {c}"))
    if as_json:
        print_json(bundle.to_json())
        return
    table = Table(title=f"bundle {out}")
    for col in ("component", "file", "size", "max |Δ| vs torch", "sha256"):
        table.add_column(col)
    for name, comp in bundle.components.items():
        art = comp.artifacts["fp32"]
        table.add_row(name, art.file, f"{art.bytes / 1024:.0f} KiB", f"{art.parity['max_abs_diff']:.2e}",
                      art.sha256[:12])
    console.print(table)
