"""`mmedge eval`: accuracy and macro-F1 per modality subset (and per precision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmedge.cli.choices import BackendName
from mmedge.cli.common import JSON_HELP, console, err_console, handle_errors, print_json
from mmedge.cli.train import subset_table


def register(app: typer.Typer) -> None:
    """Add the `eval` command."""
    app.command("eval")(evaluate)


@handle_errors
def evaluate(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    data: str | None = typer.Option(None, help="A labelled JSONL/CSV manifest, or 'digits' (the built-in "
                                    "dataset, used when omitted)."),
    split: str | None = typer.Option(None, help="train | val | test: digits' split or the rows of a manifest's "
                                                "'split' field (default: digits' test split; every row of a "
                                                "manifest; a manifest without a split field is scored whole)."),
    backend: BackendName = typer.Option("onnxruntime", help="Runtime that runs the bundle."),
    precision: str = typer.Option("fp32", help="One or a comma list, e.g. fp32,fp16,int8; per component: "
                                  "image=int8,text=int8,audio=fp16,fusion_head=fp32; 'auto' = the map chosen "
                                  "by quantize --auto; ';' separates entries."),
    threads: int | None = typer.Option(None, min=1, help="Intra-op threads per session (default: the runtime's)."),
    batch: int | None = typer.Option(None, min=1, help="Samples per encoder call (default 1: per-request "
                                     "inference; dynamic int8 results depend on what shares a batch)."),
    report_dir: Path | None = typer.Option(None, "--report", help="Write confusion.png, per_class.json, "
                                           "subsets.json (and robustness.png/json) for the first precision."),
    robustness: bool = typer.Option(False, help="With --report: accuracy as noise grows on each modality."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Evaluate a bundle on a dataset; with several precisions, also compare them with fp32."""
    from mmedge.bundle import Bundle
    from mmedge.data.sources import BUILTIN, eval_split, naming_fallback
    from mmedge.eval.evaluate import EVAL_BATCH, evaluate_bundle
    from mmedge.eval.precision_report import precision_report
    from mmedge.precision import parse_list

    batch = batch or EVAL_BATCH
    loaded = Bundle.load(bundle)  # loaded and verified once for every precision
    precisions = [p.explicit(loaded) for p in parse_list(precision)]
    spec = data or BUILTIN
    with naming_fallback(data):  # an error caused by the built-in fallback says so
        split, note = eval_split(spec, split, loaded.provenance.get("data"))
        if note and not as_json:
            err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
        results = [evaluate_bundle(loaded, spec, split, backend, p, threads, batch=batch) for p in precisions]
        report = None
        if backend == "onnxruntime" and (len(precisions) > 1 or precisions[0].label != "fp32"):
            report = precision_report(loaded, spec, split, precisions, threads, batch=batch)
        if report_dir:
            write_report(loaded, spec, split, backend, threads, results[0], report_dir, robustness)
    if as_json:
        rows = [{**r.to_json(), "data": spec, "split": split, "note": note} for r in results]
        for row, rep in zip(rows, report or [], strict=False):
            row["precision_report"] = rep.to_json()
        print_json(rows)
        return
    where = f"{spec}:{split or ('test' if spec == BUILTIN else 'all rows')}"
    for r in results:
        console.print(subset_table(r.subsets, f"{bundle} — {backend} {label(r.precision)} — {where}"))
    if report:
        console.print(report_table(report, f"accuracy vs precision — {bundle} — {where}"))


def write_report(bundle: Any, data: str, split: str | None, backend: str, threads: int | None, result: Any,
                 out: Path, robustness: bool) -> None:
    """Confusion matrix, per-class report and (optionally) robustness curves of one precision."""
    from mmedge.eval.plots import write_eval_report
    from mmedge.eval.robustness import evaluate_robustness

    curves = None
    if robustness:
        curves = evaluate_robustness(bundle, data, split, backend, result.precision, threads=threads)
    files = write_eval_report(result, out, bundle.labels, curves, title=str(bundle.root))
    err_console.print(f"report: {', '.join(str(f) for f in files.values())}", highlight=False)


def label(precision: Any) -> str:
    """'int8' or 'text=int8,…'."""
    from mmedge.precision import Precision

    return Precision.parse(precision).label


def report_table(rows: list[Any], title: str) -> Table:
    """Accuracy, macro-F1, agreement with fp32, per-component max/mean |Δ| vs fp32, size on disk."""
    table = Table(title=title)
    components = list(rows[0].components) if rows else []
    diff_cols = [f"{c} max/mean |Δ|" for c in components]
    for col in ("precision", "accuracy", "macro-F1", "agree fp32", *diff_cols, "size"):
        table.add_column(col, justify="left" if col == "precision" else "right")
    for r in rows:
        diffs = [f"{r.components[c]['max_abs_diff']:.2g} / {r.components[c]['mean_abs_diff']:.2g}"
                 if c in r.components else "—" for c in components]
        table.add_row(r.label, f"{r.accuracy:.4f}", f"{r.macro_f1:.4f}", f"{100 * r.agreement:.2f}%", *diffs,
                      f"{r.bytes / 1024:.0f} KiB")
    return table
