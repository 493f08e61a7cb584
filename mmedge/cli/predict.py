"""`mmedge predict`: classify one sample (any subset of text, image, audio) with a bundle."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mmedge.cli.choices import BackendName
from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `predict` command."""
    app.command("predict")(predict)


@handle_errors
def predict(
    bundle: Path = typer.Argument(..., help="Bundle directory (mmedge export)."),
    text: str | None = typer.Option(None, help="Text input."),
    image: Path | None = typer.Option(None, help="Image file."),
    audio: Path | None = typer.Option(None, help="Audio file (wav/flac/ogg)."),
    backend: BackendName = typer.Option("onnxruntime", help="Runtime that runs the bundle."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8 | auto (quantize --auto's map) | "
                                  "component=precision,…"),
    threads: str | None = typer.Option(None, help="Intra-op threads per session: a count, or auto (the usable "
                                       "cores shared among the encoders); default: the runtime's."),
    top: int = typer.Option(5, min=1, help="Rows of the probability table."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print the label and class probabilities."""
    from mmedge.runtime.options import parse_threads
    from mmedge.runtime.pipeline import Pipeline

    with Pipeline.from_bundle(bundle, backend=backend, precision=precision, threads=parse_threads(threads)) as pipe:
        result = pipe.predict(text=text, image=image, audio=audio)  # blank text is absent; Paths are accepted
    if as_json:
        print_json(result.to_json())
        return
    console.print(f"[bold]{result.label}[/]  (p = {result.probabilities[result.label]:.3f}; "
                  f"modalities: {', '.join(result.present)})")
    table = Table()
    table.add_column("label")
    table.add_column("probability", justify="right")
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1])[:top]:
        table.add_row(name, f"{p:.4f}")
    console.print(table)
