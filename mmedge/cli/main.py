"""Entry point of the `mmedge` CLI: registers each command module's commands."""

from __future__ import annotations

from collections.abc import Callable

import typer

from mmedge import __version__
from mmedge.cli.common import setup_logging
from mmedge.cli.failures import MmedgeGroup, register_broken
from mmedge.registry import Registry

app = typer.Typer(
    name="mmedge",
    cls=MmedgeGroup,  # no traceback ever reaches a user: failures are one line + a documented exit code
    help="Multimodal (text + image + audio) classifiers: train → export (ONNX) → quantize → build (TensorRT) "
    "→ bench / eval / predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command group → its `register(app)`; heavy imports happen inside the commands. Listed in help order.
COMMAND_TABLE = {name: f"mmedge.cli.{name}:register" for name in
                 ("train", "export", "predict", "evaluate", "demo", "quantize", "inspect", "migrate", "bench",
                  "build", "serve", "export_triton", "doctor", "export_inputs")}
COMMAND_MODULES: Registry[Callable[[typer.Typer], None]] = Registry("command", COMMAND_TABLE)


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


for _name in COMMAND_TABLE:
    try:
        COMMAND_MODULES.get(_name)(app)
    except Exception as _exc:  # one broken command module must not take the others down (nor show a traceback)
        register_broken(app, _name, _exc)
