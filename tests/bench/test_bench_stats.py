"""LatencyStats against numpy on known samples, and a hypothesis property test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmedge.bench.stats import LatencyStats, instability_warning, is_unstable, summarize
from mmedge.errors import InputError

KNOWN_MS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]


def test_known_samples_in_ns() -> None:
    stats = summarize([int(x * 1e6) for x in KNOWN_MS], batch=1)
    assert stats.count == 10
    assert stats.min_ms == 1.0 and stats.max_ms == 100.0
    assert stats.mean_ms == pytest.approx(14.5)
    # numpy linear interpolation: p50 = 5.5, p90 = 9 + 0.1 * 91 = 18.1
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(18.1)
    assert stats.p95_ms == pytest.approx(np.percentile(KNOWN_MS, 95, method="linear"))
    assert stats.p99_ms == pytest.approx(np.percentile(KNOWN_MS, 99, method="linear"))
    assert stats.std_ms == pytest.approx(float(np.std(KNOWN_MS, ddof=1)))
    assert stats.cov == pytest.approx(stats.std_ms / 14.5)
    assert stats.throughput == pytest.approx(1000.0 / 14.5)


def test_ms_unit_and_batch_throughput() -> None:
    stats = summarize([2.0, 2.0, 2.0, 2.0], batch=8, unit="ms")
    assert stats.p50_ms == 2.0 and stats.std_ms == 0.0 and stats.cov == 0.0
    assert stats.throughput == pytest.approx(8 * 1000 / 2.0)
    assert stats.batch == 8


def test_wall_clock_throughput_for_concurrent_runs() -> None:
    # 100 requests of 10 ms each, overlapped so that the whole loop took 0.25 s.
    stats = summarize([10.0] * 100, batch=2, unit="ms", wall_s=0.25)
    assert stats.throughput == pytest.approx(100 * 2 / 0.25)


def test_single_sample() -> None:
    stats = summarize([3_000_000])
    assert stats.count == 1 and stats.std_ms == 0.0
    assert stats.p99_ms == stats.p50_ms == stats.min_ms == stats.max_ms == 3.0


@pytest.mark.parametrize("bad", [[], [float("nan")], [1.0, -1.0], [math.inf]])
def test_rejects_bad_samples(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        summarize([1.0], batch=0)
    with pytest.raises(ValueError):
        summarize([1.0], unit="s")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        summarize([1.0], wall_s=0.0)


def test_instability() -> None:
    steady = summarize([10.0, 10.1, 9.9, 10.0], unit="ms")
    noisy = summarize([1.0, 10.0, 1.0, 10.0], unit="ms")
    assert not is_unstable(steady)
    assert instability_warning(steady) is None
    assert is_unstable(noisy)
    text = instability_warning(noisy, label="text encoder")
    assert text is not None and "text encoder" in text and "10%" in text
    assert not is_unstable(noisy, cov_threshold=10.0)


def test_json_round_trip() -> None:
    stats = summarize([1.5, 2.5, 3.5], batch=4, unit="ms")
    again = LatencyStats.from_json(stats.to_json())
    assert again == stats
    assert list(stats.to_json()) == [
        "count", "min_ms", "mean_ms", "std_ms", "cov", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
        "throughput", "batch",
    ]  # fmt: skip
    old = stats.to_json()
    del old["batch"]  # reports before the field existed
    assert LatencyStats.from_json(old).batch == 1
    with pytest.raises(InputError, match=r"stats\.min_ms: required key is missing"):
        LatencyStats.from_json({"count": 1})
    with pytest.raises(InputError, match=r"stats\.count: expected int"):
        LatencyStats.from_json({**stats.to_json(), "count": "3"})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_matches_numpy_on_any_samples(samples: list[int]) -> None:
    stats = summarize(samples)
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    for q, value in [(50, stats.p50_ms), (90, stats.p90_ms), (95, stats.p95_ms), (99, stats.p99_ms)]:
        assert value == pytest.approx(float(np.percentile(ms, q, method="linear")), rel=1e-12, abs=1e-12)
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    assert stats.mean_ms == pytest.approx(float(ms.mean()), rel=1e-12, abs=1e-12)
    assert stats.count == len(samples)
    assert stats.cov >= 0.0
