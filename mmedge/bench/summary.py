"""Self-contained Markdown and terminal summaries of a harness run, and the report folder writer.

`bench_markdown` extends `report.to_markdown` with what a reader needs to trust the table
without the JSON: how it was measured, the cost model and achieved GFLOP/s, encoder
concurrency, power, and the machine's ISA and estimated peak.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.bench.report import BenchReport, BenchResult, plot_latency, plot_pareto, save_json, to_markdown
from mmedge.io import atomic_path

if TYPE_CHECKING:
    from rich.table import Table

logger = logging.getLogger(__name__)

STAGE_ORDER: tuple[str, ...] = (
    "preprocess.text", "preprocess.image", "preprocess.audio", "preprocess",
    "encoder.text", "encoder.image", "encoder.audio", "encoders.sequential", "encoders.concurrent",
    "fusion_head", "postprocess", "end_to_end",
)  # fmt: skip
COMPUTE_COLUMNS = ("config", "params", "GFLOP/call", "GFLOP/s at p50", "% of peak", "int8 MACs")
CONCURRENCY_COLUMNS = (
    "config",
    "sum of encoders ms",
    "slowest ms",
    "sequential ms",
    "concurrent ms",
    "conc / sum",
    "conc / slowest",
)


def ordered_stages(stages: dict[str, Any]) -> dict[str, Any]:
    """Stages in pipeline order (known names first, then any others as recorded)."""
    known = [s for s in STAGE_ORDER if s in stages]
    return {s: stages[s] for s in [*known, *(s for s in stages if s not in STAGE_ORDER)]}


def _num(value: float | None, spec: str) -> str:
    """Format a number; '–' for None."""
    return "–" if value is None else f"{value:{spec}}"


def compute_rows(report: BenchReport) -> list[list[str]]:
    """One row per measured result: params, GFLOP per call, achieved GFLOP/s, % of peak, int8 share."""
    rows = []
    for r in report.results:
        fig = r.config.extra.get("compute")
        if r.failed or not fig or r.cost is None:
            continue
        share = r.cost.quantized_macs / r.cost.macs if r.cost.macs else 0.0
        rows.append(
            [
                r.config.key,
                f"{r.cost.params / 1e6:.2f} M",
                _num(fig["gflop_per_call"], ".4f"),
                _num(fig["achieved_gflops"], ".2f"),
                _num(fig["pct_of_peak"], ".2f") + "%",
                f"{share:.0%}",
            ]
        )
    return rows


def concurrency_rows(report: BenchReport) -> list[list[str]]:
    """One row per result with both encoder modes measured."""
    rows = []
    for r in report.results:
        fig = r.config.extra.get("concurrency")
        if r.failed or not fig:
            continue
        rows.append(
            [
                r.config.key,
                _num(fig["sum_of_encoders_p50_ms"], ".3f"),
                _num(fig["slowest_encoder_p50_ms"], ".3f"),
                _num(fig["sequential_p50_ms"], ".3f"),
                _num(fig["concurrent_p50_ms"], ".3f"),
                _num(fig["concurrent_over_sum"], ".2f"),
                _num(fig["concurrent_over_slowest"], ".2f"),
            ]
        )
    return rows


def power_lines(report: BenchReport) -> list[str]:
    """Markdown lines about power: a table on Jetson, else the note saying why it is absent."""
    measured = [r for r in report.results if r.power and r.power.get("mean_mw") is not None]
    if not measured:
        notes = {str(r.config.extra.get("power_note")) for r in report.results if r.config.extra.get("power_note")}
        return [f"Power: {n}." for n in sorted(notes)] or ["Power: not measured."]
    lines = [
        "| config | mean mW | idle mW | mJ / call | mJ / item | dynamic mJ / call |",
        "|---|" + "---:|" * 5,
    ]
    for r in measured:
        p: dict[str, Any] = r.power or {}
        lines.append(
            f"| {r.config.key} | {_num(p['mean_mw'], '.0f')} | {_num(p.get('idle_mw'), '.0f')} | "
            f"{_num(p['energy_mj_per_inference'], '.3f')} | {_num(p['energy_mj_per_item'], '.3f')} | "
            f"{_num(p.get('dynamic_energy_mj_per_inference'), '.3f')} |"
        )
    return lines


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """A Markdown table (first column left-aligned)."""
    out = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    return out + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def _load(values: list[float] | None) -> str:
    """The 1-minute load average, '?' when unknown."""
    return f"{values[0]:.1f}" if values else "?"


def setup_lines(report: BenchReport) -> list[str]:
    """How the numbers were measured, from the report's environment record."""
    bench = report.env.get("bench") or {}
    cpu = report.env.get("cpu") or {}
    isa = ", ".join(k for k, v in (cpu.get("isa") or {}).items() if v) or "?"
    count = f"{bench.get('seconds')} s" if bench.get("seconds") else f"{bench.get('iters')} rounds"
    return [
        "Latency = **model compute** (`Pipeline.run_batch`: encoders "
        f"({bench.get('mode', '?')}) + fusion head) per call, in ms, at each row's batch size; "
        "`items/s` = batch x 1000 / mean. "
        f"Bundle `{bench.get('bundle', '?')}` ({bench.get('preset', '?')} preset), modalities "
        f"{'+'.join(bench.get('modalities', []))}, inputs rotated over real samples of "
        f"`{bench.get('data', '?')}`. All configurations ran side by side in one process, interleaved "
        f"round-robin ({count} after {bench.get('warmup', '?')} warm-up rounds, clock "
        f"{bench.get('clock', '?')}, threads {bench.get('threads') or 'default'}). "
        "`p50 / ref` is relative to the first configuration at the same batch size.",
        "",
        f"CPU: {cpu.get('model') or '?'}; ISA: {isa}; estimated fp32 peak "
        f"{_num(cpu.get('peak_gflops_estimate'), '.0f')} GFLOP/s ({cpu.get('peak_gflops_assumption', '?')}); "
        f"peak RSS {_num(report.env.get('peak_rss_mb'), '.0f')} MiB; system load average (1 min) at start / end "
        f"{_load(bench.get('loadavg_start'))} / {_load(bench.get('loadavg_end'))} on "
        f"{(cpu.get('cores') or {}).get('usable', '?')} usable cores.",
        *(["", f"**{note}**"] if (note := busy_note(report)) else []),
    ]


def busy_note(report: BenchReport) -> str | None:
    """A warning when other work kept the machine's cores busy (load average above the usable cores)."""
    bench = report.env.get("bench") or {}
    cores = ((report.env.get("cpu") or {}).get("cores") or {}).get("usable")
    loads = [v[0] for v in (bench.get("loadavg_start"), bench.get("loadavg_end")) if v]
    if not cores or not loads or max(loads) <= cores:
        return None
    return (
        f"The machine was busy during this run (1-minute load average up to {max(loads):.1f} on {cores} usable "
        "cores): latencies include contention from other processes; compare ratios, not absolute times."
    )


def suite_lines(report: BenchReport) -> list[str]:
    """How to reproduce a suite's report, and which bundles it had to skip."""
    suite = report.env.get("bench_suite")
    if not suite:
        return []
    lines = [f"Reproduce on this machine class (`{suite.get('machine_class')}`): `make bench` "
             f"(= `{suite.get('command')}`).", ""]  # fmt: skip
    lines += [f"- skipped bundle {s}" for s in suite.get("skipped") or []]
    return ["", *lines]


def bench_markdown(report: BenchReport) -> str:
    """Self-contained Markdown: setup, results, cost model, concurrency, power, stages, environment."""
    for r in report.results:
        r.stages = ordered_stages(r.stages)
    base = to_markdown(report)
    head, sep, rest = base.partition("\n## ")
    title, _, table = head.partition("\n")
    extra = ["", *setup_lines(report), *suite_lines(report), ""]
    more = [
        "",
        "## Cost model and achieved throughput",
        "",
        "MACs counted on each component's ONNX at the precision run (torch rows: the fp32 ONNX), at the "
        "median input shapes; GFLOP = 2 x MACs; GFLOP/s = GFLOP per call / p50.",
        "",
    ]
    more += _table(COMPUTE_COLUMNS, compute_rows(report))
    conc = concurrency_rows(report)
    if conc:
        more += [
            "",
            "## Encoders: sequential vs concurrent (p50 ms)",
            "",
            "`conc / sum` < 1: running the encoders concurrently beats running them one after another; "
            "`conc / slowest` = 1 would be perfect overlap.",
            "",
        ]
        more += _table(CONCURRENCY_COLUMNS, conc)
    more += ["", "## Power", "", *power_lines(report), ""]
    return title + "\n" + "\n".join(extra) + table.rstrip("\n") + "\n" + "\n".join(more) + sep + rest


def write_markdown(report: BenchReport, path: Path) -> Path:
    """Write `bench_markdown(report)` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(bench_markdown(report))
    return path


def write_outputs(report: BenchReport, json_path: Path | None, report_dir: Path | None) -> list[Path]:
    """--json FILE and --report DIR (results.json, results.md, latency.png, pareto.png with accuracy)."""
    written: list[Path] = []
    if json_path is not None:
        written.append(save_json(report, json_path))
    if report_dir is not None:
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        written.append(save_json(report, report_dir / "results.json"))
        written.append(write_markdown(report, report_dir / "results.md"))
        if any(r.samples_ms for r in report.results):
            written.append(plot_latency(report, report_dir / "latency.png"))
        pareto = pareto_report(report)
        if pareto is not None:
            written.append(plot_pareto(pareto, report_dir / "pareto.png"))
    return written


def pareto_report(report: BenchReport) -> BenchReport | None:
    """The results with accuracy at the smallest batch size (latency per call is comparable there)."""
    scored = [r for r in report.results if r.accuracy is not None and not r.failed]
    if not scored:
        return None
    batch = min(r.config.batch for r in scored)
    kept = [r for r in scored if r.config.batch == batch]
    return BenchReport(report.env, kept, report.reference, f"{report.title} (batch {batch})")


def rich_table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    """A rich Table with the first column left-aligned."""
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row)
    return table


def stage_rows(report: BenchReport) -> tuple[tuple[str, ...], list[list[str]]]:
    """Columns and rows of the per-stage p50 breakdown."""
    names: list[str] = []
    for r in report.results:
        names += [s for s in ordered_stages(r.stages) if s not in names]
    rows = [
        [r.config.key, *(_num(r.stages[s].p50_ms, ".3f") if s in r.stages else "–" for s in names)]
        for r in report.results
        if not r.failed
    ]
    return ("config", *names), rows


def terminal_tables(report: BenchReport) -> list[Table]:
    """The stage, cost-model and concurrency tables for the terminal (after `render_table`)."""
    columns, rows = stage_rows(report)
    tables = [rich_table("stage breakdown (p50 ms)", columns, rows)] if len(columns) > 1 else []
    tables.append(rich_table("cost model", COMPUTE_COLUMNS, compute_rows(report)))
    conc = concurrency_rows(report)
    if conc:
        tables.append(rich_table("encoders: sequential vs concurrent (p50 ms)", CONCURRENCY_COLUMNS, conc))
    return tables


def notes(report: BenchReport) -> list[str]:
    """Failures, instability warnings and power notes, one line each, for the terminal."""
    lines = [f"{r.config.key} failed: {r.error}" for r in report.results if r.failed]
    lines += [f"{r.config.key}: {w}" for r in report.results for w in r.warnings]
    lines += [note] if (note := busy_note(report)) else []
    return lines + [line for line in power_lines(report) if line.startswith("Power:")]


def failed(report: BenchReport) -> list[BenchResult]:
    """Results that could not be measured."""
    return [r for r in report.results if r.failed]
