"""Benchmark suites (`mmedge bench --suite benchmarks/suite.yaml`, i.e. `make bench`).

A suite names the bundles to measure (built by training + exporting a preset when missing, and
quantized to the precisions it lists), the bench settings, and where results go:
`<results_dir>/<machine_class>/` gets results.json, results.md, latency.png and pareto.png for
every bundle together. Relative paths resolve against `root` (itself relative to the suite
file; default: the suite file's folder).
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmedge.bench.envinfo import board_model, core_counts, cpu_model
from mmedge.bench.report import BenchReport
from mmedge.bench.summary import write_outputs
from mmedge.errors import InputError
from mmedge.workflow import BUILD_KEYS

logger = logging.getLogger(__name__)

SUITE_KEYS = {"title", "root", "results_dir", "machine_class", "bundles", "bench"}
BUNDLE_KEYS = {"name", "path", "build", "add_precisions", "optional", "bench"}
Say = Callable[[str], None]


def _quiet(message: str) -> None:
    """Default progress sink: the log."""
    logger.info("%s", message)


@dataclass
class SuiteBundle:
    """One bundle of a suite: where it lives, how to build it, what to add, bench overrides."""

    name: str
    path: Path
    build: dict[str, Any] = field(default_factory=dict)
    add_precisions: list[str] = field(default_factory=list)
    optional: bool = False
    bench: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """A parsed suite file."""

    title: str
    results_dir: Path
    machine_class: str
    bundles: list[SuiteBundle]
    bench: dict[str, Any]
    source: Path


def _unknown(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    """InputError naming keys a suite section does not know."""
    extra = sorted(set(data) - allowed)
    if extra:
        raise InputError(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(allowed))})")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file."""
    import yaml

    source = Path(path)
    if not source.is_file():
        raise InputError(f"suite file not found: {source}")
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or not data.get("bundles"):
        raise InputError(f"{source}: a suite needs a 'bundles' list")
    _unknown(str(source), data, SUITE_KEYS)
    root = (source.parent / str(data.get("root", "."))).resolve()
    bundles = []
    for i, entry in enumerate(data["bundles"]):
        if not isinstance(entry, dict) or "name" not in entry or "path" not in entry:
            raise InputError(f"{source}: bundles[{i}] needs 'name' and 'path'")
        _unknown(f"{source}: bundles[{i}]", entry, BUNDLE_KEYS)
        _unknown(f"{source}: bundles[{i}].build", entry.get("build") or {}, BUILD_KEYS)
        build = dict(entry.get("build") or {})
        if "run_dir" in build:
            build["run_dir"] = root / build["run_dir"]
        bundles.append(
            SuiteBundle(
                str(entry["name"]),
                root / entry["path"],
                build,
                list(entry.get("add_precisions") or []),
                bool(entry.get("optional", False)),
                dict(entry.get("bench") or {}),
            )
        )
    return Suite(
        str(data.get("title", "mmedge benchmark suite")),
        root / data.get("results_dir", "results"),
        str(data.get("machine_class", "auto")),
        bundles,
        dict(data.get("bench") or {}),
        source,
    )


def machine_class() -> str:
    """A folder name for this machine class: '<arch>-<cpu or board>-<usable cores>c'."""
    name = board_model() or cpu_model() or "unknown-cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    return f"{platform.machine().lower()}-{slug}-{core_counts()['usable']}c"


def ensure_bundle(entry: SuiteBundle, say: Say = _quiet) -> Path:
    """The bundle folder, trained and exported from `build.preset` first when it does not exist."""
    from mmedge.workflow import ensure_bundle as ensure

    return ensure(entry.path, entry.build, entry.name, say)


def add_precisions(entry: SuiteBundle, say: Say = _quiet) -> None:
    """Quantize the bundle to each listed precision it lacks (a failure only logs a warning)."""
    from mmedge.workflow import add_precisions as add

    add(entry.path, entry.add_precisions, entry.name, say)


def _spec(suite: Suite, entry: SuiteBundle, overrides: dict[str, Any], prefix: str) -> Any:
    """The BenchSpec of one suite bundle: suite settings < bundle settings < command-line overrides."""
    from mmedge.bench.harness import BenchSpec

    settings = {
        "missing_precisions": "skip",
        **suite.bench,
        **entry.bench,
        **{k: v for k, v in overrides.items() if v is not None},
    }
    allowed = {f.name for f in fields(BenchSpec)} - {"bundle", "timer_factory", "json_path", "report_dir"}
    _unknown(f"{suite.source}: bench settings", settings, allowed)
    return BenchSpec(entry.path, label_prefix=prefix, title=f"{suite.title}: {entry.name}", **settings)


def merge_reports(reports: list[BenchReport], title: str, extra_env: dict[str, Any]) -> BenchReport:
    """One report of several bundles' runs (environment of the first, every run's settings kept)."""
    env = dict(reports[0].env)
    runs = [r.env.get("bench", {}) for r in reports]
    env["bench_runs"] = runs
    env["bench"] = {
        **runs[0],
        "bundle": ", ".join(str(r.get("bundle")) for r in runs),
        "preset": ", ".join(str(r.get("preset")) for r in runs),
        "loadavg_end": runs[-1].get("loadavg_end"),
    }
    env["peak_rss_mb"] = max((r.env.get("peak_rss_mb") or 0.0) for r in reports) or None
    env.update(extra_env)
    results = [res for r in reports for res in r.results]
    return BenchReport(env, results, reference=reports[0].reference, title=title)


def run_suite(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    say: Say = _quiet,
) -> tuple[BenchReport, Path]:
    """Build what is missing, benchmark every bundle, write results under the machine-class folder."""
    from mmedge.bench.harness import run_bench

    suite = load_suite(path)
    reports, skipped = [], []
    for entry in suite.bundles:
        try:
            ensure_bundle(entry, say)
        except Exception as exc:
            if not entry.optional:
                raise
            logger.warning("skipping optional bundle '%s': %s", entry.name, exc)
            skipped.append(f"{entry.name}: {type(exc).__name__}: {exc}"[:200])
            continue
        add_precisions(entry, say)
        say(f"{entry.name}: benchmarking")
        prefix = f"{entry.name}/" if len(suite.bundles) > 1 else ""
        reports.append(run_bench(_spec(suite, entry, overrides or {}, prefix)))
    if not reports:
        raise InputError(f"{suite.source}: no bundle could be built or found ({'; '.join(skipped)})")
    cls = machine_class() if suite.machine_class == "auto" else suite.machine_class
    target = out_dir or suite.results_dir / cls
    suite_env = {
        "bench_suite": {
            "suite": str(suite.source),
            "machine_class": cls,
            "skipped": skipped,
            "command": f"mmedge bench --suite {Path(path)}",
        }
    }
    report = merge_reports(reports, suite.title, suite_env)
    write_outputs(report, None, target)
    return report, target
