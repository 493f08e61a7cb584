"""`mmedge build`: TensorRT engines for a bundle (parse → build_bundle → render)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmedge.cli.choices import HardwareCompat, PrecisionName
from mmedge.cli.common import JSON_HELP, console, handle_errors, print_json
from mmedge.cli.progress import status

if TYPE_CHECKING:
    from mmedge.runtime.backends.tensorrt.build import BuildReport


def register(app: typer.Typer) -> None:
    """Add the `build` command to the app."""

    @app.command("build")
    @handle_errors
    def build(
        bundle: Path = typer.Argument(..., help="Bundle folder (from mmedge export)."),
        precision: PrecisionName = typer.Option(
            "fp16",
            "--precision",
            "-p",
            help="Which ONNX to build from: fp32 | fp16 | int8 (precision is in the graph).",
        ),
        components: str | None = typer.Option(
            None, "--components", "-c", help="Comma-separated components (default: all with this precision)."
        ),
        workspace: float = typer.Option(4.0, "--workspace", help="Builder workspace limit in GiB."),
        shapes: list[str] | None = typer.Option(
            None,
            "--shapes",
            help="Profile override NAME:MIN/OPT/MAX, NAME an input (1x8/4x64/8x128) or an "
            "axis (batch:1/8/32); repeat or comma-separate.",
        ),
        timing_cache: Path | None = typer.Option(
            None, "--timing-cache", help="Timing cache file (read, then updated)."
        ),
        dla_core: int | None = typer.Option(
            None, "--dla-core", help="Build for this DLA core (Jetson); DLA needs fixed shapes: pin them with --shapes."
        ),
        gpu_fallback: bool = typer.Option(
            False, "--gpu-fallback", help="With --dla-core: let DLA-unsupported layers run on the GPU."
        ),
        version_compatible: bool = typer.Option(
            False, "--version-compatible", help="Engine loadable by later TensorRT versions."
        ),
        hardware_compat: HardwareCompat = typer.Option(
            "none", "--hardware-compat", help="none | ampere+ | same-cc: engine portable across GPUs."
        ),
        force: bool = typer.Option(False, "--force", help="Rebuild even when a cached engine matches."),
        verbose_log: bool = typer.Option(
            False, "--verbose-log", help="Also write TensorRT VERBOSE messages to the builder log."
        ),
        json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Build TensorRT engines (strongly typed, precision from the ONNX) and record them in the bundle."""
        from mmedge.runtime.backends.tensorrt.build import BuildOptions, build_bundle

        names = tuple(c.strip() for c in components.split(",") if c.strip()) if components else None
        options = BuildOptions(
            precision=precision,
            components=names,
            shapes=tuple(shapes or ()),
            workspace_gib=workspace,
            timing_cache=timing_cache,
            dla_core=dla_core,
            gpu_fallback=gpu_fallback,
            version_compatible=version_compatible,
            hardware_compat=hardware_compat,
            force=force,
            verbose_log=verbose_log,
        )
        with status("building TensorRT engines"):
            report = build_bundle(bundle, options)
        if json_out:
            print_json(report.to_json())
            return
        _render(report)


def _render(report: BuildReport) -> None:
    from rich.table import Table

    env = report.environment
    table = Table(title=f"TensorRT {env.tensorrt} engines on {env.gpu} ({env.sm}) — {report.precision}")
    for column in ("component", "engine", "size", "build", "from"):
        table.add_column(column)
    for r in report.results:
        table.add_row(
            r.component,
            str(r.plan.relative_to(report.bundle)),
            f"{r.plan_bytes / 1e6:.1f} MB",
            "-" if r.cached else f"{r.seconds:.1f} s",
            "cache" if r.cached else "built",
        )
    console.print(table)
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {name}: {why}")
