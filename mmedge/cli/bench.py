"""`mmedge bench`: latency of the whole multimodal pipeline, configurations side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mmedge.cli.choices import BenchMode, backend_help
from mmedge.cli.common import JSON_HELP, console, err_console, handle_errors, print_json
from mmedge.cli.progress import status
from mmedge.cli.train import split_list
from mmedge.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the `bench` command (extra arguments are accepted only to explain the old `--json FILE`)."""
    app.command("bench", context_settings={"allow_extra_args": True})(bench)


def int_list(value: str, option: str) -> list[int]:
    """'1,8' → [1, 8]; InputError naming the option otherwise."""
    try:
        return [int(v) for v in split_list(value) or []]
    except ValueError:
        raise InputError(f"{option} expects comma-separated integers, got '{value}'") from None


def check_extra_args(extra: list[str], as_json: bool) -> None:
    """InputError for stray arguments; the old `--json FILE` form gets the new spelling."""
    if not extra:
        return
    if as_json:
        file = next((a for a in extra if a.endswith(".json")), extra[0])
        raise InputError(f"--json is a flag now (it prints one JSON document on stdout); write the results file "
                         f"with --output {file} (or --report DIR for results.json, results.md and plots)")
    raise InputError(f"unexpected argument(s): {' '.join(extra)} (one BUNDLE, options after it)")


SUITE_TAKES = frozenset({"suite", "warmup", "iters", "seconds", "report", "as_json"})


def check_suite_options(ctx: typer.Context) -> None:
    """InputError naming the options given that --suite does not take (the suite file sets them per run)."""
    given = [p for p in ctx.command.params if p.name and p.name not in SUITE_TAKES
             and getattr(ctx.get_parameter_source(p.name), "name", "DEFAULT") in ("COMMANDLINE", "ENVIRONMENT")]
    if given:
        flags = ", ".join(p.opts[0] if p.opts else p.name or "" for p in given)
        raise InputError(f"--suite takes only --warmup, --iters, --seconds, --report and --json (the suite file "
                         f"sets the rest per run); not {flags}")


@handle_errors
def bench(
    ctx: typer.Context,
    bundle: Path | None = typer.Argument(None, help="Bundle directory (not with --suite)."),
    backends: str = typer.Option(
        "torch,onnxruntime",
        help="Comma list; the first configuration is the reference. "
        + backend_help("Backends: ")
        + ". Peers: tensorrt-cudagraph (CUDA-graph replay), torch-compile.",
    ),
    precisions: str = typer.Option(
        "fp32", help="Comma list: fp32, fp16, int8 (each backend's own int8: int8-trt on TensorRT), int8-trt "
        "(torch: fp32 only)."
    ),
    batch: str = typer.Option("1", "--batch", help="Comma list of batch sizes, e.g. 1,8."),
    warmup: int | None = typer.Option(None, min=0, help="Warm-up rounds, not measured (default: 10)."),
    iters: int | None = typer.Option(None, min=1, help="Measured rounds (default: 100)."),
    seconds: float | None = typer.Option(None, help="Measure for this many seconds instead of --iters."),
    threads: str | None = typer.Option(None, help="Intra-op threads per session: a count, or auto (the usable "
                                       "cores shared among the encoders); default: the runtime's."),
    modalities: str | None = typer.Option(None, help="Comma list of text, image, audio (default: all)."),
    mode: BenchMode = typer.Option("auto", help="How the headline run calls the encoders (auto: the pipeline "
                                   "measures both and keeps the faster)."),
    stages: bool = typer.Option(
        True, "--stages/--no-stages", help="Also time the other encoder mode, preprocessing and end to end."
    ),
    data: str = typer.Option("digits", help="Inputs: 'digits' (built-in) or a JSONL/CSV manifest."),
    split: str = typer.Option("test", help="train | val | test (or a manifest's own split name) of --data whose "
                                           "real samples are used; all: every row."),
    accuracy: bool = typer.Option(False, "--accuracy", help="Also evaluate each configuration on --split."),
    power: bool | None = typer.Option(
        None, "--power/--no-power", help="Jetson power via tegrastats (default: when tegrastats exists)."
    ),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="Add a torch.compile row."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the results as JSON to FILE."),
    report: Path | None = typer.Option(None, "--report", help="Write results.json, results.md and PNG plots to DIR."),
    suite: Path | None = typer.Option(
        None, "--suite", help="Run a benchmark suite (YAML), e.g. benchmarks/suite.yaml."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Measure latency per configuration (backend x precision x batch), interleaved, on real samples."""
    check_extra_args(list(ctx.args), as_json)
    if iters is not None and seconds is not None:
        raise InputError("give --iters or --seconds, not both")
    if suite is not None:
        if bundle is not None:
            raise InputError("give a BUNDLE or --suite, not both")
        check_suite_options(ctx)
        from mmedge.bench.suite import run_suite

        overrides = {"warmup": warmup, "iters": iters, "seconds": seconds}
        with status("benchmark suite") as step:
            result, out_dir = run_suite(suite, overrides, report, lambda msg: step.update(msg))
        render(result, [out_dir], as_json)
        return
    if bundle is None:
        raise InputError("give a BUNDLE directory (or --suite FILE)")
    from mmedge.bench.harness import BenchSpec, run_bench
    from mmedge.runtime.options import parse_threads

    spec = BenchSpec(
        bundle,
        split_list(backends) or [],
        split_list(precisions) or [],
        int_list(batch, "--batch"),
        warmup=10 if warmup is None else warmup,
        iters=100 if iters is None else iters,
        seconds=seconds,
        threads=parse_threads(threads),
        modalities=split_list(modalities),
        compile=compile,
        mode=mode,
        stages=stages,
        data=data,
        split=split,
        accuracy=accuracy,
        power=power,
        json_path=output,
        report_dir=report,
    )
    render(run_bench(spec), [p for p in (output, report) if p is not None], as_json)


def render(report: Any, written: list[Path], as_json: bool = False) -> None:
    """Results table, stage/cost/concurrency tables (or one JSON document), notes, and where files went."""
    from mmedge.bench.summary import notes, render_table, terminal_tables

    if as_json:
        print_json(report.to_json())
    else:
        console.print(render_table(report))
        for table in terminal_tables(report):
            console.print(table)
    for line in notes(report):
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
    for path in written:
        err_console.print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)
