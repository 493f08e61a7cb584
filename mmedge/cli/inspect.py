"""`mmedge inspect`: each component's artifacts — precision, size, ops, Q/DQ, dtypes, parity, hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json


def register(app: typer.Typer) -> None:
    """Add the `inspect` command."""
    app.command("inspect")(inspect)


@handle_errors
def inspect(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    trtexec: bool = typer.Option(False, "--trtexec", help="Also print a trtexec build line per artifact with the "
                                 "bundle's --minShapes/--optShapes/--maxShapes (in --json: always under 'trtexec')."),
) -> None:
    """Show every artifact of a bundle (hashes verified, graphs checked; non-zero if not, or if it needs migrate)."""
    from mmedge.bundle import Bundle, schema_1_error
    from mmedge.errors import BundleError
    from mmedge.eval.inspect import inspect_bundle

    loaded = Bundle.load(bundle, legacy=True)  # read-only: a schema-1 bundle is shown, then refused below
    info = inspect_bundle(loaded)
    refused = bool(info.get("problems") or info.get("needs_migration"))
    if as_json and not refused:  # one JSON document: the report, or (below) the refusal as the JSON error
        print_json(info)
    elif not as_json:
        console.print(summary_table(info))
        if info.get("auto_precision"):
            console.print("auto precision: " + ",".join(f"{c}={p}" for c, p in info["auto_precision"].items()))
        if trtexec:
            for name, lines in info["trtexec"].items():
                for key, line in lines.items():
                    console.print(f"# {name} {key}\n{line}", highlight=False, markup=False, soft_wrap=True)
        if info.get("unverified"):
            console.print(f"unverified (schema_version {info['schema_version']}, no sha256 recorded): "
                          f"{', '.join(info['unverified'])}", highlight=False, markup=False, soft_wrap=True)
    if info.get("problems"):
        raise BundleError("inconsistent bundle: " + "; ".join(info["problems"]))
    if info.get("needs_migration"):
        raise schema_1_error(loaded.root)


def _dtypes(row: dict[str, Any]) -> str:
    mix = row.get("initializer_dtypes", {})
    total = sum(v["bytes"] for v in mix.values()) or 1
    ordered = sorted(mix.items(), key=lambda kv: -kv[1]["bytes"])
    return " ".join(f"{k} {100 * v['bytes'] / total:.0f}%" for k, v in ordered)


def summary_table(info: dict[str, Any]) -> Table:
    """One row per artifact."""
    table = Table(title=f"bundle {info['bundle']} ({info['name']})")
    for col in ("component", "precision", "size", "nodes", "Q/DQ", "top ops", "weights (by bytes)",
                "max |Δ|", "sha256"):
        table.add_column(col)
    for name, comp in info["components"].items():
        for row in comp["artifacts"]:
            ops = ", ".join(f"{k}×{v}" for k, v in list(row.get("top_ops", {}).items())[:4])
            diff = row["parity"].get("max_abs_diff")
            ref = row["parity"].get("reference", "")
            rounding = f" ({row['weight_rounding']})" if row.get("weight_rounding") else ""
            table.add_row(name, row["precision"] + rounding, f"{row['bytes'] / 1024:.0f} KiB",
                          str(row.get("nodes", "")), str(row.get("qdq_nodes", "")), ops, _dtypes(row),
                          "" if diff is None else f"{diff:.2e} ({ref})", row["sha256"])
    return table
