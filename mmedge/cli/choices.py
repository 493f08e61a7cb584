"""Closed sets of option values, as `Literal` types: `--help` shows `[fp16|int8]`, typos fail as usage errors.

Registry-backed sets (backends, presets) are read from their lazy registries (names only, nothing is
imported), so a new backend is a registry entry and appears here by itself. Sets whose registry lives in
a torch module (fusion ops, training modes) are spelled out; tests/cli/test_choices.py checks that they
match the registries.

Usage in a command: `mode: BenchMode = typer.Option("concurrent", help="…")` — the value is a plain str.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mmedge.models.presets import PRESETS
from mmedge.runtime.backends import available_backends

PrecisionName = Literal["fp32", "fp16", "int8"]
QuantPrecision = Literal["fp16", "int8"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
Rounding = Literal["gptq", "nearest"]
QuantTarget = Literal["cpu", "tensorrt"]
BenchMode = Literal["auto", "concurrent", "sequential"]  # = bench.plan.MODES
HardwareCompat = Literal["none", "ampere+", "same-cc"]
FusionName = Literal["concat", "sum", "mean", "product", "gated", "attention"]  # = models.fusion.FUSION_OPS
TrainMode = Literal["full", "frozen", "lp-ft", "partial", "lora"]  # = train.modes.MODES (+ peft_modes)
Monitor = Literal["val_loss", "val_macro_f1", "val_accuracy"]
TrainDevice = Literal["auto", "cpu", "cuda"]  # = config.TRAIN_DEVICES

if TYPE_CHECKING:
    BackendName = str
    PresetName = str
else:  # built from the registries at import: Literal of their names
    BackendName = Literal[tuple(available_backends())]
    PresetName = Literal[tuple(PRESETS.names())]


def backend_help(prefix: str = "") -> str:
    """'A, B or C' listing the registered backends (for comma-list options, which a Literal cannot type)."""
    names = available_backends()
    return f"{prefix}{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else f"{prefix}{names[0]}"
