"""Benchmark results, the data model: configs, results, reports and their versioned JSON schema.

Rendering (Markdown, terminal tables, notes, plots, the report folder) is `mmedge.bench.summary`'s job.

Schema (BENCH_SCHEMA_VERSION = 1)::

    {"schema_version": 1, "title": str, "reference": str | null, "env": {...environment_record...},
     "results": [{"config": {"backend", "precision", "batch", "modalities", "threads", "mode",
                             "label", "extra"},
                  "stats": LatencyStats, "stages": {stage: LatencyStats}, "samples_ms": [float],
                  "ratio_to_reference": float | null, "accuracy": float | null,
                  "accuracy_metric": str, "cost": Cost | null, "power": {...} | null,
                  "warnings": [str], "error": str | null}]}

`ratio_to_reference` is this result's p50 latency divided by the reference result's p50
(1.0 = the reference, 0.5 = twice as fast). Raw end-to-end samples are kept so plots and
re-analysis never need a rerun. A configuration that could not run (e.g. torch.compile failing)
is kept as a result whose `error` says why: its stats are all zero (`failed_stats`) and it has no
samples, ratio or accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge import serialize
from mmedge.bench.costmodel import Cost
from mmedge.bench.stats import LatencyStats
from mmedge.errors import InputError
from mmedge.io import write_json

logger = logging.getLogger(__name__)

BENCH_SCHEMA_VERSION = 1
MODES: tuple[str, ...] = ("sequential", "concurrent", "auto")
_HEADER = ("schema_version", "title", "reference")  # written before the fields' own order (env, results)
AFTER_SWITCH = "after_switch"  # a visit's first call, right after another configuration ran (see bench.measure)
STAGE_ORDER: tuple[str, ...] = (
    AFTER_SWITCH, "preprocess.text", "preprocess.image", "preprocess.audio", "preprocess",
    "encoder.text", "encoder.image", "encoder.audio", "encoders.sequential", "encoders.concurrent",
    "encoders.auto",
    "fusion_head", "postprocess", "end_to_end",
)  # fmt: skip


class MalformedReport(InputError):
    """A bench report (or part of one) that does not match the schema; names the bad key."""


@dataclass
class BenchConfig:
    """What was measured: backend, precision, batch, modalities present, threads, run mode."""

    backend: str
    precision: str
    batch: int = 1
    modalities: tuple[str, ...] = ()
    threads: int | None = None
    mode: str = "sequential"
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.modalities = tuple(self.modalities)

    @property
    def key(self) -> str:
        """Short unique-ish name: the label if given, else backend/precision/batch/modalities/mode."""
        if self.label:
            return self.label
        parts = [self.backend, self.precision, f"b{self.batch}", "+".join(self.modalities) or "none"]
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        if self.mode != "sequential":
            parts.append(self.mode)
        return "/".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict."""
        return serialize.to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchConfig:
        """Rebuild from `to_json` output."""
        return serialize.from_json(cls, data, where="config", error=MalformedReport)


@dataclass
class BenchResult:
    """One configuration's measurements: end-to-end and per-stage stats plus raw samples."""

    config: BenchConfig
    stats: LatencyStats
    stages: dict[str, LatencyStats] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)
    ratio_to_reference: float | None = None
    accuracy: float | None = None
    accuracy_metric: str = "accuracy"
    cost: Cost | None = None
    power: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when this configuration could not be measured (see `error`)."""
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict (raw samples rounded to the nanosecond)."""
        data: dict[str, Any] = serialize.to_json(self)
        data["samples_ms"] = [round(float(x), 6) for x in self.samples_ms]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        """Rebuild from `to_json` output."""
        return serialize.from_json(cls, data, where="result", error=MalformedReport)


@dataclass
class BenchReport:
    """A set of results measured on one machine, with its environment record."""

    env: dict[str, Any]
    results: list[BenchResult] = field(default_factory=list)
    reference: str | None = None
    title: str = "mmedge bench"
    schema_version: int = BENCH_SCHEMA_VERSION

    def find(self, key: str) -> BenchResult | None:
        """The first result whose config key is `key`."""
        return next((r for r in self.results if r.config.key == key), None)

    def compute_ratios(self) -> None:
        """Fill every result's ratio_to_reference from the reference result's p50."""
        if self.reference is None:
            return
        ref = self.find(self.reference)
        if ref is None:
            keys = [r.config.key for r in self.results]
            raise InputError(f"reference {self.reference!r} is not among the results {keys}")
        for result in self.results:
            result.ratio_to_reference = (
                result.stats.p50_ms / ref.stats.p50_ms
                if ref.stats.p50_ms > 0 and not ref.failed and not result.failed
                else None
            )

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict: the header keys first, then env and results (raw samples rounded)."""
        data: dict[str, Any] = serialize.to_json(self)
        data["results"] = [r.to_json() for r in self.results]
        return {k: data.pop(k) for k in _HEADER} | data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchReport:
        """Rebuild from `to_json` output, refusing schema versions this mmedge does not know."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if not isinstance(version, int):
            raise InputError("not an mmedge bench report: it has no integer 'schema_version'")
        if version > BENCH_SCHEMA_VERSION:
            raise InputError(
                f"bench report schema version {version} is newer than this mmedge understands "
                f"({BENCH_SCHEMA_VERSION}): upgrade mmedge to read it"
            )
        return serialize.from_json(cls, data, error=MalformedReport)


def save_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report atomically as JSON; returns the path."""
    target = Path(path)
    write_json(target, report.to_json())
    return target


def load_json(path: str | Path) -> BenchReport:
    """Read a report written by save_json."""
    import json

    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"bench report not found: {source}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read bench report {source}: {exc}") from exc
    try:
        return BenchReport.from_json(data)
    except MalformedReport as exc:
        raise InputError(f"{source} is not a valid mmedge bench report: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:  # e.g. an unknown run mode
        raise InputError(f"{source} is not a valid mmedge bench report: {exc!r}") from exc


def failed_stats(batch: int = 1) -> LatencyStats:
    """All-zero stats for a result that could not be measured (its `error` says why)."""
    return LatencyStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, batch)


def ordered_stages(stages: dict[str, Any]) -> dict[str, Any]:
    """Stages in pipeline order (known names first, then any others as recorded)."""
    known = [s for s in STAGE_ORDER if s in stages]
    return {s: stages[s] for s in [*known, *(s for s in stages if s not in STAGE_ORDER)]}


def pareto_report(report: BenchReport) -> BenchReport | None:
    """The results with accuracy at the smallest batch size (latency per call is comparable there)."""
    scored = [r for r in report.results if r.accuracy is not None and not r.failed]
    if not scored:
        return None
    batch = min(r.config.batch for r in scored)
    kept = [r for r in scored if r.config.batch == batch]
    return BenchReport(report.env, kept, report.reference, f"{report.title} (batch {batch})")
