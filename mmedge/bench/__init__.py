"""Benchmark primitives: latency statistics, timers, environment records, cost model, power, reports.

Every submodule is torch-free. Heavy or optional imports (onnx, matplotlib, rich, psutil) happen
inside the functions that need them, so importing `mmedge.bench` stays cheap.
"""

from __future__ import annotations

from mmedge.bench.stats import LatencyStats, is_unstable, summarize
from mmedge.bench.timers import CpuTimer, StageRecorder, Timer

__all__ = ["CpuTimer", "LatencyStats", "StageRecorder", "Timer", "is_unstable", "summarize"]
