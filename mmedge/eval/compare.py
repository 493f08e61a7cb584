"""One comparison of a result against a reference, per named output (numpy only).

Modelled on Polygraphy's comparator: every output has its own tolerance (absolute `atol`,
relative `rtol`, and the error statistic checked: "elemwise", "max", "mean" or "median"). An
output passes when that statistic is within `atol` OR within `rtol` (elementwise: every element
within one of the two); rtol=0 checks the absolute error alone. The relative error divides by
|reference|, with zeros replaced by a tiny epsilon. A NaN or infinity in the difference always
fails. Output names and shapes must match exactly: a mismatch is an InputError, never a silent
broadcast or a skipped output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmedge.errors import InputError

STATS: tuple[str, ...] = ("elemwise", "max", "mean", "median")
DEFAULT = ""  # key of a tolerance mapping that applies to outputs not named in it
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Tolerance:
    """Allowed error of one output: within `atol` OR within `rtol`, judged on statistic `stat`."""

    atol: float = 1e-5
    rtol: float = 1e-5
    stat: str = "elemwise"

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise InputError(f"unknown error statistic '{self.stat}' (choose from: {', '.join(STATS)})")
        if not (self.atol >= 0 and self.rtol >= 0):
            raise InputError(f"tolerances must be >= 0, got atol={self.atol}, rtol={self.rtol}")

    def __str__(self) -> str:
        return f"{self.stat} error within abs {self.atol:g} or rel {self.rtol:g}"


Tolerances = Tolerance | Mapping[str, Tolerance]


@dataclass(frozen=True)
class OutputComparison:
    """Error statistics of one output and whether they are within its tolerance."""

    name: str
    passed: bool
    tolerance: Tolerance
    max_abs_diff: float
    mean_abs_diff: float
    median_abs_diff: float
    max_rel_diff: float
    mean_rel_diff: float
    median_rel_diff: float
    elements: int
    nonfinite: int  # non-finite values in the result
    mismatched: int  # elements outside the tolerance (elementwise test, whatever `stat` is)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        """One line: PASSED/FAILED, the output, its figures and the tolerance."""
        verdict = "PASSED" if self.passed else "FAILED"
        text = (f"{verdict} {self.name}: max |Δ| {self.max_abs_diff:.3g}, mean {self.mean_abs_diff:.3g}, "
                f"median {self.median_abs_diff:.3g}; max rel {self.max_rel_diff:.3g}; "
                f"{self.mismatched}/{self.elements} elements outside ({self.tolerance})")
        return text + (f"; {self.nonfinite} non-finite value(s) in the result" if self.nonfinite else "")

    def to_json(self) -> dict[str, Any]:
        """The figures a bundle's `parity` records: max_abs_diff and mean_abs_diff (plain floats)."""
        return {"max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff}


@dataclass(frozen=True)
class Comparison:
    """The comparison of every output, in the reference's order."""

    outputs: dict[str, OutputComparison]

    @property
    def passed(self) -> bool:
        """Whether every output is within its tolerance."""
        return all(o.passed for o in self.outputs.values())

    @property
    def failed(self) -> list[str]:
        """Names of the outputs outside their tolerance."""
        return [n for n, o in self.outputs.items() if not o.passed]

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> OutputComparison:
        return self.outputs[name]

    def summary(self) -> str:
        """One line per output, failures first, after a headline."""
        ordered = sorted(self.outputs.values(), key=lambda o: o.passed)
        head = ("PASSED: all outputs match" if self.passed else
                f"FAILED: {len(self.failed)} of {len(self.outputs)} output(s) mismatched: {', '.join(self.failed)}")
        return "\n".join([head, *(f"  {o.summary()}" for o in ordered)])


def tolerance_for(tolerances: Tolerances | None, name: str) -> Tolerance:
    """The tolerance of output `name`: its own entry, else the DEFAULT ('') entry, else Tolerance()."""
    if tolerances is None:
        return Tolerance()
    if isinstance(tolerances, Tolerance):
        return tolerances
    return tolerances.get(name, tolerances.get(DEFAULT, Tolerance()))


def _stat(values: np.ndarray, stat: str) -> float:
    """max / mean / median of `values` (NaN propagates; 0.0 for an empty array)."""
    if values.size == 0:
        return 0.0
    if stat == "max":
        return float(np.max(values))
    return float(np.mean(values) if stat == "mean" else np.median(values))


def _within(value: float, tol: float) -> bool:
    """value <= tol, with NaN never within."""
    return bool(value <= tol)


def compare_output(name: str, reference: np.ndarray, result: np.ndarray, tolerance: Tolerance) -> OutputComparison:
    """Compare one output (same shape required) against its reference."""
    ref, got = np.asarray(reference), np.asarray(result)
    if ref.shape != got.shape:
        raise InputError(f"output '{name}': result shape {got.shape} differs from the reference's {ref.shape}; "
                         "compare outputs of the same shape")
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        absdiff = np.abs(got64 - ref64)
        denom = np.abs(ref64)
        reldiff = absdiff / np.where(denom == 0, _EPS, denom)
    bad = ~np.isfinite(absdiff)
    outside = bad | ((absdiff > tolerance.atol) & (reldiff > tolerance.rtol))
    stats = {s: (_stat(absdiff, s), _stat(reldiff, s)) for s in ("max", "mean", "median")}
    if tolerance.stat == "elemwise":
        passed = not outside.any()
    else:
        abs_value, rel_value = stats[tolerance.stat]
        passed = not bad.any() and (_within(abs_value, tolerance.atol) or _within(rel_value, tolerance.rtol))
    return OutputComparison(
        name, passed, tolerance,
        max_abs_diff=stats["max"][0], mean_abs_diff=stats["mean"][0], median_abs_diff=stats["median"][0],
        max_rel_diff=stats["max"][1], mean_rel_diff=stats["mean"][1], median_rel_diff=stats["median"][1],
        elements=int(absdiff.size), nonfinite=int((~np.isfinite(got64)).sum()), mismatched=int(outside.sum()),
    )  # fmt: skip


def compare(reference: Mapping[str, np.ndarray], result: Mapping[str, np.ndarray],
            tolerances: Tolerances | None = None) -> Comparison:
    """Compare every output of `result` against `reference` (same names, same shapes), each at its tolerance."""
    missing, extra = [n for n in reference if n not in result], [n for n in result if n not in reference]
    if missing or extra:
        raise InputError(f"outputs differ: the result lacks {missing or 'none'} and has extra {extra or 'none'} "
                         f"(reference outputs: {list(reference)})")
    if isinstance(tolerances, Mapping):
        unknown = sorted(set(tolerances) - set(reference) - {DEFAULT})
        if unknown:
            raise InputError(f"tolerances name output(s) {unknown} that are not compared; outputs: {list(reference)}")
    return Comparison({n: compare_output(n, reference[n], result[n], tolerance_for(tolerances, n))
                       for n in reference})
