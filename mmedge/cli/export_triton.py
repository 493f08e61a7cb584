"""`mmedge export-triton`: write a native Triton model repository (per-component models + ensemble)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `export-triton` command."""
    app.command("export-triton")(export_triton)


@handle_errors
def export_triton(
    bundle: Path = typer.Argument(..., help="Bundle directory (mmedge export)."),
    out: Path = typer.Option(..., "--out", help="Model repository folder to create (must not exist)."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8 | auto | component=precision,…"),
    platform: str = typer.Option("onnxruntime", help="onnxruntime (KIND_CPU) | tensorrt (KIND_GPU, built engines)."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="Largest batch (default: the bundle's range)."),
    max_queue_delay_us: int = typer.Option(1000, "--max-queue-delay-us", help="Dynamic batching delay (µs)."),
    instances: int = typer.Option(1, "--instances", help="Instances per model (instance_group count)."),
    name: str = typer.Option("mmedge", "--name", help="Name of the ensemble model (the one clients call)."),
    gpu: str | None = typer.Option(None, "--gpu", help="tensorrt: the GPU (as `mmedge build` recorded it, e.g. "
                                   "'NVIDIA H200') whose engines to use, when the bundle has engines for several."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a Triton model repository: preprocessing (Python backend) → encoders → fusion head, as an ensemble."""
    from mmedge.serve.repository import RepositoryOptions, export_repository

    opts = RepositoryOptions(precision=precision, platform=platform, max_batch=max_batch,
                             max_queue_delay_us=max_queue_delay_us, instances=instances, name=name, gpu=gpu)
    result = export_repository(bundle, out, opts)
    if as_json:
        print_json(result)
        return
    console.print(f"wrote Triton model repository [bold]{result['repository']}[/] "
                  f"({', '.join(result['models'])}); run: {result['command']}", highlight=False)
