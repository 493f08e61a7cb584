"""Entry point of the `mmedge` CLI: registers each command module's commands."""

from __future__ import annotations

import importlib

import typer

from mmedge import __version__
from mmedge.cli.common import setup_logging

app = typer.Typer(
    name="mmedge",
    help="Multimodal (text + image + audio) classifiers: train → export (ONNX) → quantize → build (TensorRT) "
    "→ bench / eval / predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines `register(app)`; heavy imports happen inside the commands.
COMMAND_MODULES = ("train", "export", "predict", "evaluate", "demo", "quantize", "inspect", "bench", "build")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mmedge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v info, -vv debug)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """mmedge: from PyTorch fine-tuning to measured edge inference."""
    setup_logging(verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(f"mmedge.cli.{_name}").register(app)
