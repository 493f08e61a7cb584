"""compare(): per-output tolerances, error statistics, names/shapes checks, non-finite results."""

from __future__ import annotations

import numpy as np
import pytest

from mmedge.errors import InputError
from mmedge.eval.compare import DEFAULT, Tolerance, compare

ABS_ONLY = {"rtol": 0.0}


def test_figures_measure_result_against_reference():
    # a comparison of either side with itself would report 0; a relative error over |result| 1/3
    c = compare({"y": np.array([2.0, 4.0])}, {"y": np.array([3.0, 4.0])})
    y = c["y"]
    assert y.max_abs_diff == pytest.approx(1.0) and y.mean_abs_diff == pytest.approx(0.5)
    assert y.median_abs_diff == pytest.approx(0.5)
    assert y.max_rel_diff == pytest.approx(0.5) and y.mean_rel_diff == pytest.approx(0.25)
    assert not c.passed and c.failed == ["y"] and y.mismatched == 1 and y.elements == 2


def test_identical_outputs_pass_with_zero_error():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    c = compare({"x": x}, {"x": x.copy()}, Tolerance(atol=0.0, rtol=0.0))
    assert c.passed and bool(c) and c["x"].max_abs_diff == 0.0 and c["x"].max_rel_diff == 0.0


def test_each_output_is_judged_at_its_own_tolerance():
    ref = {"a": np.zeros(4), "b": np.zeros(4), "c": np.zeros(4)}
    got = {k: v + 0.1 for k, v in ref.items()}
    tols = {"a": Tolerance(atol=0.2, **ABS_ONLY), "b": Tolerance(atol=0.05, **ABS_ONLY),
            DEFAULT: Tolerance(atol=0.15, **ABS_ONLY)}
    c = compare(ref, got, tols)
    assert [c[k].passed for k in "abc"] == [True, False, True]  # c falls back to the "" default
    assert c.failed == ["b"] and c["b"].tolerance.atol == 0.05
    summary = c.summary()
    assert summary.startswith("FAILED: 1 of 3") and summary.splitlines()[1].strip().startswith("FAILED b")
    # without a default entry, an unnamed output gets the strict built-in tolerance
    assert not compare(ref, got, {"a": Tolerance(atol=0.2, **ABS_ONLY)})["c"].passed


def test_a_tolerance_for_an_output_that_is_not_compared_is_an_error():
    with pytest.raises(InputError, match="logitz"):
        compare({"logits": np.zeros(2)}, {"logits": np.zeros(2)}, {"logitz": Tolerance()})


def test_max_stat_sees_one_outlier_that_mean_and_median_forgive():
    ref, got = {"e": np.zeros(4)}, {"e": np.array([0.0, 0.0, 0.0, 1.0])}
    assert not compare(ref, got, Tolerance(atol=0.5, stat="max", **ABS_ONLY)).passed
    assert compare(ref, got, Tolerance(atol=0.5, stat="mean", **ABS_ONLY)).passed  # mean 0.25
    assert compare(ref, got, Tolerance(atol=0.1, stat="median", **ABS_ONLY)).passed  # median 0
    assert not compare(ref, got, Tolerance(atol=0.2, stat="mean", **ABS_ONLY)).passed


def test_elementwise_needs_each_element_within_abs_or_rel():
    # large value: big absolute, small relative error; tiny value: small absolute, big relative error
    ref, got = {"v": np.array([1000.0, 1e-6])}, {"v": np.array([1001.0, 2e-6])}
    assert compare(ref, got, Tolerance(atol=1e-3, rtol=1e-2)).passed
    assert not compare(ref, got, Tolerance(atol=1e-3, rtol=0.0)).passed  # the large value fails
    only_rel = compare(ref, got, Tolerance(atol=0.0, rtol=1e-2))["v"]
    assert not only_rel.passed and only_rel.mismatched == 1  # the tiny value fails


def test_stat_passes_when_either_abs_or_rel_statistic_is_within():
    ref, got = {"v": np.array([100.0, 200.0])}, {"v": np.array([101.0, 202.0])}  # abs 1-2, rel 1 %
    assert compare(ref, got, Tolerance(atol=0.5, rtol=0.02, stat="max")).passed
    assert not compare(ref, got, Tolerance(atol=0.5, rtol=0.005, stat="max")).passed


def test_zero_reference_gives_a_finite_relative_error():
    c = compare({"z": np.zeros(3)}, {"z": np.array([0.0, 0.0, 1e-9])}, Tolerance(atol=1e-6, rtol=0.0))
    assert c.passed and np.isfinite(c["z"].max_rel_diff) and c["z"].mean_rel_diff > 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("stat", ["elemwise", "max", "mean", "median"])
def test_a_non_finite_result_fails_whatever_the_tolerance(bad: float, stat: str):
    ref, got = {"y": np.ones(5)}, {"y": np.array([1.0, 1.0, bad, 1.0, 1.0])}
    y = compare(ref, got, Tolerance(atol=1e9, rtol=1e9, stat=stat))["y"]
    assert not y.passed and y.nonfinite == 1 and y.mismatched == 1
    assert "non-finite" in y.summary()


def test_output_names_must_match():
    with pytest.raises(InputError, match=r"lacks \['b'\].*extra \['c'\]"):
        compare({"a": np.zeros(1), "b": np.zeros(1)}, {"a": np.zeros(1), "c": np.zeros(1)})


def test_shapes_must_match_exactly_no_broadcasting():
    with pytest.raises(InputError, match=r"'y'.*\(1, 3\).*\(3,\)"):
        compare({"y": np.zeros(3)}, {"y": np.zeros((1, 3))})


def test_bad_tolerances_are_rejected():
    with pytest.raises(InputError, match="statistic"):
        Tolerance(stat="p99")
    with pytest.raises(InputError, match=">= 0"):
        Tolerance(atol=-1.0)


def test_parity_json_keeps_the_bundle_keys():
    figures = compare({"e": np.array([0.0, 0.0])}, {"e": np.array([0.5, -1.5])})["e"].to_json()
    assert figures == {"max_abs_diff": 1.5, "mean_abs_diff": 1.0}
    assert all(type(v) is float for v in figures.values())


def test_low_precision_inputs_are_compared_in_float64():
    ref = {"h": np.array([60000.0], dtype=np.float16)}
    got = {"h": np.array([-60000.0], dtype=np.float16)}
    assert compare(ref, got)["h"].max_abs_diff == pytest.approx(120000.0, rel=1e-3)  # would overflow in fp16
