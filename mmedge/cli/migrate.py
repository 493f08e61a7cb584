"""`mmedge migrate`: upgrade a bundle written by an older mmedge (schema 1) so that it loads again."""

from __future__ import annotations

from pathlib import Path

import typer

from mmedge.cli.common import console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `migrate` command."""
    app.command("migrate")(migrate)


@handle_errors
def migrate(
    bundle: Path = typer.Argument(..., help="Bundle directory written by an older mmedge (schema 1)."),
    as_json: bool = typer.Option(False, "--json", help="Print the migration report as JSON."),
) -> None:
    """Check a schema-1 bundle's ONNX hashes and record the sha256 of its tokenizer and torch reference."""
    from mmedge.migrate import migrate_bundle

    report = migrate_bundle(bundle)
    if as_json:
        print_json(report.to_json())
    elif not report.migrated:
        console.print(f"{report.root} is already schema {report.to_version}: nothing to migrate",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        for relative, record in report.hashed.items():
            console.print(f"recorded {relative}: sha256 {record.sha256[:12]}… ({record.bytes} bytes)",
                          highlight=False, markup=False, soft_wrap=True)
        console.print(f"migrated {report.root}: schema {report.from_version} → {report.to_version} "
                      f"({len(report.verified)} artifact(s) verified, {len(report.hashed)} file(s) hashed)",
                      highlight=False, markup=False, soft_wrap=True)
