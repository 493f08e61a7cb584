"""`mmedge doctor`: what this machine can run, what is missing or mismatched, and the command that fixes each."""

from __future__ import annotations

from pathlib import Path

import typer

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json

STYLE = {"ok": "green", "missing": "yellow", "warn": "yellow", "error": "bold red", "n/a": "dim"}


def register(app: typer.Typer) -> None:
    """Add the `doctor` command."""
    app.command("doctor")(doctor)


@handle_errors
def doctor(
    environment: Path | None = typer.Option(None, "--environment", help="Judge a recorded environment "
                                            "(a `doctor --json` output) instead of this machine."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check extras, backends, GPU, TensorRT / CUDA versions and Jetson set-up (exit 1 only if something is broken)."""
    from rich.markup import escape
    from rich.table import Table

    from mmedge.doctor.report import doctor as run
    from mmedge.doctor.report import load_environment

    report = run(load_environment(environment) if environment is not None else None)
    if as_json:
        print_json(report.to_json())
    else:
        env = report.environment
        where = env.board or (env.gpus[0]["name"] if env.gpus else env.cpu) or env.machine
        table = Table(title=f"mmedge doctor: {where} ({env.machine}, Python {env.python})")
        for col in ("area", "check", "status", "found", "fix"):
            table.add_column(col)
        for c in report.checks:
            table.add_row(c.area, escape(c.name), f"[{STYLE[c.status]}]{c.status}[/]", escape(c.detail),
                          escape(c.fix or ""))
        console.print(table)
        counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
        console.print(f"{counts}; exit code {report.exit_code}", highlight=False)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
