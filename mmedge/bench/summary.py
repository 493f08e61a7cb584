"""Rendering of bench reports: the one Markdown document (results.md), terminal tables and notes, plots,
and the report folder writer.

The data model and its JSON live in `mmedge.bench.report`; this module only reads them. The Markdown is
self-contained, so a reader can trust the table without the JSON: how it was measured, the results, the
cost model and achieved GFLOP/s, encoder concurrency, power, the stage breakdown, warnings and the
machine (ISA, estimated peak, software).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.bench.plots import latency_plot, pareto_plot
from mmedge.bench.report import AFTER_SWITCH, BenchReport, BenchResult, ordered_stages, pareto_report, save_json
from mmedge.io import atomic_path

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["notes", "ordered_stages", "render_table", "terminal_tables", "to_markdown", "write_outputs"]

logger = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[str, ...] = (
    "config", "p50 ms", "p90 ms", "p99 ms", "mean ± std ms", "CoV", "items/s", "p50 / ref", "after switch p50 ms",
    "accuracy",
)  # fmt: skip
COMPUTE_COLUMNS = ("config", "params", "GFLOP/call", "GFLOP/s at p50", "% of fp32 peak", "% of int8-aware peak",
                   "int8 MACs")
CONCURRENCY_COLUMNS = (
    "config",
    "sum of encoders ms",
    "slowest ms",
    "sequential ms",
    "concurrent ms",
    "conc / sum",
    "conc / slowest",
    "auto ms",
    "auto / seq",
)
POWER_COLUMNS = ("config", "mean mW", "idle mW", "mJ / call", "mJ / item", "dynamic mJ / call")


# --------------------------------------------------------------------------- rows (shared by every output)


def _num(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    """Format a number; '–' for None."""
    return "–" if value is None else f"{value:{spec}}{suffix}"


def result_row(result: BenchResult) -> list[str]:
    """One results-table row, aligned with TABLE_COLUMNS."""
    if result.failed:
        return [result.config.key, "failed", *["–"] * (len(TABLE_COLUMNS) - 2)]
    s = result.stats
    return [
        result.config.key,
        _num(s.p50_ms),
        _num(s.p90_ms),
        _num(s.p99_ms),
        f"{s.mean_ms:.3f} ± {s.std_ms:.3f}",
        f"{s.cov:.1%}",
        _num(s.throughput, ".1f"),
        _num(result.ratio_to_reference, ".2f", "×"),
        _num(switch.p50_ms if (switch := result.stages.get(AFTER_SWITCH)) else None),
        _num(None if result.accuracy is None else 100.0 * result.accuracy, ".2f", "%"),
    ]


def stage_rows(report: BenchReport, with_failed: bool = False) -> tuple[tuple[str, ...], list[list[str]]]:
    """Columns and rows of the per-stage p50 breakdown, stages in pipeline order."""
    names: list[str] = []
    for r in report.results:
        names += [s for s in ordered_stages(r.stages) if s not in names]
    rows = [
        [r.config.key, *(_num(r.stages[s].p50_ms) if s in r.stages else "–" for s in names)]
        for r in report.results
        if with_failed or not r.failed
    ]
    return ("config", *names), rows


def compute_rows(report: BenchReport) -> list[list[str]]:
    """One row per measured result: params, GFLOP per call, achieved GFLOP/s, % of peak, int8 share."""
    rows = []
    for r in report.results:
        fig = r.config.extra.get("compute")
        if r.failed or not fig or r.cost is None:
            continue
        share = r.cost.quantized_macs / r.cost.macs if r.cost.macs else 0.0
        rows.append([r.config.key, f"{r.cost.params / 1e6:.2f} M", _num(fig["gflop_per_call"], ".4f"),
                     _num(fig["achieved_gflops"], ".2f"), _num(fig["pct_of_peak"], ".2f") + "%",
                     _num(fig.get("pct_of_mixed_peak"), ".2f") + "%", f"{share:.0%}"])
    return rows


def concurrency_rows(report: BenchReport) -> list[list[str]]:
    """One row per result with both encoder modes measured."""
    keys = ("sum_of_encoders_p50_ms", "slowest_encoder_p50_ms", "sequential_p50_ms", "concurrent_p50_ms")
    rows = []
    for r in report.results:
        fig = r.config.extra.get("concurrency")
        if r.failed or not fig:
            continue
        rows.append([r.config.key, *(_num(fig[k]) for k in keys), _num(fig["concurrent_over_sum"], ".2f"),
                     _num(fig["concurrent_over_slowest"], ".2f"), _num(fig.get("auto_p50_ms")),
                     _num(fig.get("auto_over_sequential"), ".2f")])
    return rows


def power_rows(report: BenchReport) -> list[list[str]]:
    """One row per result with measured power (Jetson tegrastats)."""
    rows = []
    for r in report.results:
        p: dict[str, Any] = r.power or {}
        if p.get("mean_mw") is None:
            continue
        rows.append([r.config.key, _num(p["mean_mw"], ".0f"), _num(p.get("idle_mw"), ".0f"),
                     _num(p.get("energy_mj_per_inference")), _num(p.get("energy_mj_per_item")),
                     _num(p.get("dynamic_energy_mj_per_inference"))])
    return rows


def power_notes(report: BenchReport) -> list[str]:
    """Why power is absent ('Power: …' lines); empty when some result measured it."""
    if power_rows(report):
        return []
    notes_ = {str(r.config.extra.get("power_note")) for r in report.results if r.config.extra.get("power_note")}
    return [f"Power: {n}." for n in sorted(notes_)] or ["Power: not measured."]


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


def env_summary(env: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) pairs that identify the machine and software of a report."""
    cpu = env.get("cpu") or {}
    cores = cpu.get("cores") or {}
    pkgs = env.get("packages") or {}
    gpus = env.get("gpu") or []
    git = env.get("git") or {}
    threads = {k: v for k, v in (env.get("threads_env") or {}).items() if v is not None}
    rows = [
        ("host", str(env.get("hostname", "?"))),
        ("time (UTC)", str(env.get("timestamp", "?"))),
        ("os", str((env.get("os") or {}).get("platform", "?"))),
        ("python", str((env.get("python") or {}).get("version", "?"))),
        ("cpu", f"{cpu.get('model') or '?'} ({cores.get('physical', '?')} physical / "
                f"{cores.get('logical', '?')} logical cores)"),
        ("gpu", ", ".join(g.get("name", "?") for g in gpus) if gpus else "none"),
        ("packages", ", ".join(f"{k} {v}" for k, v in pkgs.items() if v)),
        ("thread env", ", ".join(f"{k}={v}" for k, v in threads.items()) or "unset"),
        ("git", f"{git.get('commit', '?')[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else "n/a"),
    ]  # fmt: skip
    if cpu.get("board"):
        rows.insert(4, ("board", str(cpu["board"])))
    return rows


# --------------------------------------------------------------------------- Markdown


def _esc(text: str) -> str:
    """Escape characters that would break a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """A Markdown table (first column left-aligned, the others right-aligned)."""
    out = ["| " + " | ".join(_esc(c) for c in columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    return out + ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]


def _load(values: list[float] | None) -> str:
    """The 1-minute load average, '?' when unknown."""
    return f"{values[0]:.1f}" if values else "?"


def _threads(bench: dict[str, Any]) -> str:
    """Intra-op threads per session as asked, and what 'auto' chose."""
    asked, chosen = bench.get("threads"), bench.get("threads_resolved")
    if asked == "auto":
        return f"auto = {chosen} per session ({bench.get('usable_cores', '?')} usable cores)"
    return str(asked or "default")


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
        f"{bench.get('clock', '?')}, threads {_threads(bench)}): each round visits every configuration once "
        "and a visit runs its calls back to back, as a deployed model does; its first call, right after "
        "another configuration evicted this one's weights from the CPU caches, is timed apart (`after switch`). "
        "`p50 / ref` is relative to the first configuration at the same batch size.",
        "",
        f"CPU: {cpu.get('model') or '?'}; ISA: {isa}; estimated fp32 peak "
        f"{_num(cpu.get('peak_gflops_estimate'), '.0f')} GFLOP/s ({cpu.get('peak_gflops_assumption', '?')}), int8 peak "
        f"{_num(cpu.get('peak_int8_gops_estimate'), '.0f')} GOP/s ({cpu.get('peak_int8_assumption', '?')}); "
        f"peak RSS {_num(report.env.get('peak_rss_mb'), '.0f')} MiB; system load average (1 min) at start / end "
        f"{_load(bench.get('loadavg_start'))} / {_load(bench.get('loadavg_end'))} on "
        f"{(cpu.get('cores') or {}).get('usable', '?')} usable cores.",
        *(["", f"**{note}**"] if (note := busy_note(report)) else []),
    ]


def suite_lines(report: BenchReport) -> list[str]:
    """How to reproduce a suite's report, and which bundles it had to skip."""
    suite = report.env.get("bench_suite")
    if not suite:
        return []
    lines = [f"Reproduce on this machine class (`{suite.get('machine_class')}`): `make bench` "
             f"(= `{suite.get('command')}`).", ""]  # fmt: skip
    lines += [f"- skipped bundle {s}" for s in suite.get("skipped") or []]
    return ["", *lines]


def cold_start_lines(env: dict[str, Any]) -> list[str]:
    """The cold-start section (see mmedge.bench.coldstart)."""
    from mmedge.bench.coldstart import cold_start_lines as lines

    return lines(env)


def to_markdown(report: BenchReport) -> str:
    """The report as one self-contained Markdown document (what results.md holds)."""
    lines = [f"# {_esc(report.title)}", "", *setup_lines(report), *suite_lines(report), ""]
    if report.reference:
        lines += [f"Reference for `p50 / ref`: `{report.reference}` (lower is faster).", ""]
    lines += _md_table(TABLE_COLUMNS, [result_row(r) for r in report.results])
    lines += ["", "## Cost model and achieved throughput", "",
              "MACs counted on each component's ONNX at the precision run (torch rows: the fp32 ONNX), at the "
              "median input shapes; GFLOP = 2 x MACs; GFLOP/s = GFLOP per call / p50; `% of int8-aware peak` = "
              "the time the MACs take at peak (int8 MACs at the int8 peak, the rest at the fp32 peak) / p50.",
              ""]  # fmt: skip
    lines += _md_table(COMPUTE_COLUMNS, compute_rows(report)) + ([note] if (note := cost_note(report)) else [])
    if conc := concurrency_rows(report):
        lines += ["", "## Encoders: sequential vs concurrent (p50 ms)", "",
                  "`conc / sum` < 1: running the encoders concurrently beats running them one after another; "
                  "`conc / slowest` = 1 would be perfect overlap; `auto` is the pipeline's default, which measures "
                  "on its first calls whether concurrency pays and picks (`auto / seq` <= 1: it never loses).",
                  ""]  # fmt: skip
        lines += _md_table(CONCURRENCY_COLUMNS, conc)
    lines += cold_start_lines(report.env)
    power = power_rows(report)
    lines += ["", "## Power", "", *(_md_table(POWER_COLUMNS, power) if power else power_notes(report))]
    columns, rows = stage_rows(report, with_failed=True)
    if len(columns) > 1:
        lines += ["", "## Stage breakdown (p50 ms)", "", *_md_table(columns, rows)]
    warnings = [(r.config.key, f"failed: {r.error}") for r in report.results if r.failed]
    warnings += [(r.config.key, w) for r in report.results for w in r.warnings]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- `{k}`: {_esc(w)}" for k, w in warnings]
    lines += ["", "## Environment", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_esc(v)} |" for k, v in env_summary(report.env)]
    return "\n".join(lines) + "\n"


def write_markdown(report: BenchReport, path: Path) -> Path:
    """Write `to_markdown(report)` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(to_markdown(report))
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
            written.append(latency_plot(report, report_dir / "latency.png"))
        pareto = pareto_report(report)
        if pareto is not None:
            written.append(pareto_plot(pareto, report_dir / "pareto.png"))
    return written


# --------------------------------------------------------------------------- terminal


def rich_table(title: str, columns: tuple[str, ...], rows: list[list[str]], caption: str | None = None,
               styles: list[str | None] | None = None) -> Table:
    """A rich Table with the first column left-aligned and an optional style per row."""
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row, style in zip(rows, styles or [None] * len(rows), strict=True):
        table.add_row(*row, style=style)
    return table


def render_table(report: BenchReport) -> Table:
    """The results table for the terminal (failed rows red, rows with warnings yellow)."""
    styles = ["red" if r.failed else "yellow" if r.warnings else None for r in report.results]
    caption = f"reference: {report.reference}" if report.reference else None
    return rich_table(report.title, TABLE_COLUMNS, [result_row(r) for r in report.results], caption, styles)


def terminal_tables(report: BenchReport) -> list[Table]:
    """The stage, cost-model and concurrency tables for the terminal (after `render_table`)."""
    columns, rows = stage_rows(report)
    tables = [rich_table("stage breakdown (p50 ms)", columns, rows)] if len(columns) > 1 else []
    if compute := compute_rows(report):
        tables.append(rich_table("cost model", COMPUTE_COLUMNS, compute))
    if conc := concurrency_rows(report):
        tables.append(rich_table("encoders: sequential vs concurrent (p50 ms)", CONCURRENCY_COLUMNS, conc))
    from mmedge.bench.coldstart import COLUMNS, cold_start_rows

    if cold := cold_start_rows(list((report.env.get("bench") or {}).get("cold_start") or [])):
        tables.append(rich_table("cold start: import → first answer (fresh process)", COLUMNS, cold))
    return tables


def notes(report: BenchReport) -> list[str]:
    """Failures, instability warnings, a busy machine and why power is absent, one line each."""
    lines = [f"{r.config.key} failed: {r.error}" for r in report.results if r.failed]
    lines += [f"{r.config.key}: {w}" for r in report.results for w in r.warnings]
    lines += [note] if (note := busy_note(report)) else []
    lines += [note] if (note := cost_note(report)) else []
    return lines + power_notes(report)


def cost_note(report: BenchReport) -> str | None:
    """Why the cost model is empty: a graph made at load (its row's note), or onnx missing from the install."""
    uncounted = [r for r in report.results if r.cost is None and not r.failed]
    notes = sorted({f"{r.config.backend}: {r.config.extra['cost_note']}" for r in uncounted
                    if r.config.extra.get("cost_note")})
    if any(not r.config.extra.get("cost_note") for r in uncounted):
        notes.append("MACs and parameters not counted (counting reads the ONNX graphs with onnx, which "
                     "is not installed: pip install 'mmedge[train]')")
    return f"Cost model: {'; '.join(notes)}." if notes else None
