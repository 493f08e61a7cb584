"""`mmedge eval`: accuracy and macro-F1 per modality subset (and per precision)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmedge.cli.common import console, handle_errors, print_json
from mmedge.cli.train import split_list, subset_table


def register(app: typer.Typer) -> None:
    """Add the `eval` command."""
    app.command("eval")(evaluate)


@handle_errors
def evaluate(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    data: str = typer.Option("digits", help="'digits' or a labelled JSONL/CSV manifest."),
    split: str = typer.Option("test", help="Split of the built-in dataset (or manifest 'split' column)."),
    backend: str = typer.Option("onnxruntime"),
    precision: str = typer.Option("fp32", help="One or a comma list, e.g. fp32,fp16,int8."),
    threads: int | None = typer.Option(None, min=1),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate a bundle on a dataset."""
    from mmedge.evaluate import evaluate_bundle

    results = [evaluate_bundle(bundle, data, split, backend, p, threads) for p in split_list(precision) or ["fp32"]]
    if as_json:
        print_json([r.to_json() for r in results])
        return
    for r in results:
        console.print(subset_table(r.subsets, f"{bundle} — {backend} {r.precision} — {data}:{split}"))
