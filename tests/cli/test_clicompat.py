"""The click names in mmedge.cli.clicompat are the ones typer really raises."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mmedge.cli import clicompat


def test_typer_raises_these_classes() -> None:
    app = typer.Typer()
    seen: list[BaseException] = []

    @app.command()
    def probe(n: int = 0) -> None:
        """Record the context and exit."""
        assert clicompat.get_current_context().info_name == "probe"
        try:
            raise typer.Exit(3)
        except clicompat.Exit as exc:
            seen.append(exc)
            raise

    @app.command()
    def other() -> None:
        """Second command."""

    assert CliRunner().invoke(app, ["probe"]).exit_code == 3 and seen
    assert issubclass(typer.BadParameter, clicompat.UsageError)
    assert issubclass(clicompat.UsageError, clicompat.ClickException)
    assert clicompat.Abort is typer.Abort
