"""Latency statistics in the style of trtexec: percentiles, spread, throughput, stability."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mmedge import serialize
from mmedge.errors import InputError

logger = logging.getLogger(__name__)

NS_PER_MS = 1_000_000.0
DEFAULT_COV_THRESHOLD = 0.10


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one series of per-iteration latencies; every time field is in milliseconds.

    `std_ms` is the sample standard deviation (ddof=1; 0.0 for a single sample) and
    `cov = std_ms / mean_ms`, the coefficient of variation trtexec prints as "CoV".
    `throughput` is items per second: `count * batch / wall_s` when the wall-clock time of the
    whole measured loop is known (concurrent runs), else `batch * 1000 / mean_ms` (a
    sequential loop, where iterations do not overlap).
    """

    count: int
    min_ms: float
    mean_ms: float
    std_ms: float
    cov: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    throughput: float
    batch: int = 1

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict of every field."""
        return serialize.to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        """Rebuild from `to_json` output (`batch` defaults to 1); InputError naming the bad key."""
        return serialize.from_json(cls, data, where="stats", error=InputError)


def _as_ms(samples: Sequence[float] | np.ndarray, unit: Literal["ns", "ms"]) -> np.ndarray:
    """Validate samples and convert them to a float64 array of milliseconds."""
    if unit not in ("ns", "ms"):
        raise ValueError(f"unit must be 'ns' or 'ms', got {unit!r}")
    arr = np.asarray(samples, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("cannot summarize an empty list of latencies: run at least one iteration")
    if not np.all(np.isfinite(arr)):
        raise ValueError("latency samples contain NaN or infinity")
    if np.any(arr < 0):
        raise ValueError(f"latency samples must be >= 0; the smallest is {arr.min()}")
    return arr / NS_PER_MS if unit == "ns" else arr


def summarize(
    samples_ns: Sequence[float] | np.ndarray,
    batch: int = 1,
    *,
    unit: Literal["ns", "ms"] = "ns",
    wall_s: float | None = None,
) -> LatencyStats:
    """Summarize per-iteration durations (ns by default, or ms with unit="ms") into LatencyStats."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = _as_ms(samples_ns, unit)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, [50, 90, 95, 99], method="linear"))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    cov = std / mean if mean > 0 else 0.0
    if wall_s is not None:
        if wall_s <= 0:
            raise ValueError(f"wall_s must be > 0, got {wall_s}")
        throughput = ms.size * batch / wall_s
    else:
        throughput = batch * 1000.0 / mean if mean > 0 else math.inf
    return LatencyStats(
        count=int(ms.size),
        min_ms=float(ms.min()),
        mean_ms=mean,
        std_ms=std,
        cov=cov,
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=float(ms.max()),
        throughput=throughput,
        batch=batch,
    )


def is_unstable(stats: LatencyStats, cov_threshold: float = DEFAULT_COV_THRESHOLD) -> bool:
    """True when the coefficient of variation exceeds `cov_threshold` (trtexec warns at 10%)."""
    return stats.cov > cov_threshold


def instability_warning(
    stats: LatencyStats, cov_threshold: float = DEFAULT_COV_THRESHOLD, label: str = "latency"
) -> str | None:
    """The warning text for an unstable measurement, or None when it is stable."""
    if not is_unstable(stats, cov_threshold):
        return None
    return (
        f"{label} is unstable: coefficient of variation {stats.cov:.1%} exceeds {cov_threshold:.0%} "
        f"(mean {stats.mean_ms:.3f} ms, std {stats.std_ms:.3f} ms over {stats.count} iterations). "
        "Results may not be reproducible: close other programs, pin threads or CPU frequency "
        "(on Jetson: sudo jetson_clocks), add warm-up, or run more iterations."
    )
