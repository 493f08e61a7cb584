"""`mmedge export-inputs`: real preprocessed inputs per component for Polygraphy and trtexec, with commands."""

from __future__ import annotations

from pathlib import Path

import typer

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `export-inputs` command."""
    app.command("export-inputs")(export_inputs)


@handle_errors
def export_inputs(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the inputs (one sub-folder per component)."),
    count: int = typer.Option(8, "--count", "-n", min=1, help="Real samples per component."),
    batch: int = typer.Option(1, "--batch", min=1, max=64, help="Samples per feed (one Polygraphy iteration)."),
    data: str | None = typer.Option(None, "--data", help="'digits' or a manifest file (default: the bundle's data)."),
    split: str = typer.Option("val", "--split", help="Split of the data to take samples from."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write real inputs of every component (Polygraphy --load-inputs JSON, trtexec --loadInputs raw files)."""
    from mmedge.exporters.real_inputs import export_inputs as run

    manifest = run(bundle, out, data=data, split=split, count=count, batch=batch)
    if as_json:
        print_json(manifest)
        return
    for name, comp in manifest["components"].items():
        console.print(f"[bold]{name}[/]: {comp['samples']} real sample(s) in {comp['feeds']} feed(s) → "
                      f"{comp['polygraphy_inputs']}", soft_wrap=True, highlight=False)
        for label, command in comp["commands"].items():
            console.print(f"  # {label}\n  {command}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"manifest: {Path(manifest['out']) / 'manifest.json'}", soft_wrap=True, highlight=False)
