"""`mmedge bench`: latency of the whole multimodal pipeline, configurations side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mmedge.cli.common import console, err_console, handle_errors
from mmedge.cli.train import split_list
from mmedge.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the `bench` command."""
    app.command("bench")(bench)


def int_list(value: str, option: str) -> list[int]:
    """'1,8' → [1, 8]; InputError naming the option otherwise."""
    try:
        return [int(v) for v in split_list(value) or []]
    except ValueError:
        raise InputError(f"{option} expects comma-separated integers, got '{value}'") from None


@handle_errors
def bench(
    bundle: Path | None = typer.Argument(None, help="Bundle directory (not with --suite)."),
    backends: str = typer.Option(
        "torch,onnxruntime",
        help="Comma list; the first configuration is the reference. torch = PyTorch eager fp32; "
        "onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt (CUDA-streamed engines), "
        "tensorrt-cudagraph (the same, replayed as CUDA graphs), torch-compile.",
    ),
    precisions: str = typer.Option(
        "fp32", help="Comma list: fp32, fp16, int8 (each backend's own int8: int8-trt on TensorRT), int8-trt "
        "(torch: fp32 only)."
    ),
    batch: str = typer.Option("1", "--batch", help="Comma list of batch sizes, e.g. 1,8."),
    warmup: int | None = typer.Option(None, help="Warm-up rounds, not measured (default: 10)."),
    iters: int | None = typer.Option(None, help="Measured rounds (default: 100)."),
    seconds: float | None = typer.Option(None, help="Measure for this many seconds instead of --iters."),
    threads: int | None = typer.Option(None, help="Intra-op threads per session (default: the runtime's)."),
    modalities: str | None = typer.Option(None, help="Comma list, e.g. text,image (default: all)."),
    mode: str = typer.Option("concurrent", help="Encoders in the headline run: concurrent | sequential."),
    stages: bool = typer.Option(
        True, "--stages/--no-stages", help="Also time the other encoder mode, preprocessing and end to end."
    ),
    data: str = typer.Option("digits", help="Inputs: 'digits' (built-in) or a JSONL/CSV manifest."),
    split: str = typer.Option("test", help="Split of --data whose real samples are used (all: every row)."),
    accuracy: bool = typer.Option(False, "--accuracy", help="Also evaluate each configuration on --split."),
    power: bool | None = typer.Option(
        None, "--power/--no-power", help="Jetson power via tegrastats (default: when tegrastats exists)."
    ),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="Add a torch.compile row."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the results as JSON to FILE."),
    report: Path | None = typer.Option(None, "--report", help="Write results.json, results.md and PNG plots to DIR."),
    suite: Path | None = typer.Option(
        None, "--suite", help="Run a benchmark suite (YAML), e.g. benchmarks/suite.yaml."
    ),
) -> None:
    """Measure latency per configuration (backend x precision x batch), interleaved, on real samples."""
    if iters is not None and seconds is not None:
        raise InputError("give --iters or --seconds, not both")
    if suite is not None:
        if bundle is not None:
            raise InputError("give a BUNDLE or --suite, not both")
        from mmedge.bench.suite import run_suite

        overrides = {"warmup": warmup, "iters": iters, "seconds": seconds}
        with console.status("benchmark suite …", spinner="dots") as status:
            result, out_dir = run_suite(suite, overrides, report, lambda msg: status.update(f"{msg} …"))
        render(result, [out_dir])
        return
    if bundle is None:
        raise InputError("give a BUNDLE directory (or --suite FILE)")
    from mmedge.bench.harness import BenchSpec, run_bench

    spec = BenchSpec(
        bundle,
        split_list(backends) or [],
        split_list(precisions) or [],
        int_list(batch, "--batch"),
        warmup=10 if warmup is None else warmup,
        iters=100 if iters is None else iters,
        seconds=seconds,
        threads=threads,
        modalities=split_list(modalities),
        compile=compile,
        mode=mode,
        stages=stages,
        data=data,
        split=split,
        accuracy=accuracy,
        power=power,
        json_path=json_file,
        report_dir=report,
    )
    render(run_bench(spec), [p for p in (json_file, report) if p is not None])


def render(report: Any, written: list[Path]) -> None:
    """Results table, stage/cost/concurrency tables, notes, and where files went."""
    from mmedge.bench.summary import notes, render_table, terminal_tables

    console.print(render_table(report))
    for table in terminal_tables(report):
        console.print(table)
    for line in notes(report):
        err_console.print(line, highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
