"""One Pipeline shared by 8 threads gives bit-identical results to sequential calls; thousands of calls leak nothing.

Run with `-s` to see the soak's measured figures (they are also written to soak.json in the test's tmp dir).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from mmedge.data.digits import load_digits
from mmedge.data.sample import Sample
from mmedge.runtime.pipeline import Pipeline

THREADS = 8
ROUNDS = 3  # each thread predicts every sample ROUNDS times, starting at a different offset
SOAK_CALLS = 3000
WARMUP_CALLS = 300
MAX_RSS_GROWTH_MIB = 50.0
PATTERNS = [("text", "image", "audio"), ("image",), ("text", "audio"), ("audio",), ("text",), ("image", "audio"),
            ("text", "image")]


def partial_samples(n: int) -> list[Sample]:
    """Real test-split samples, each keeping one modality pattern (every pattern several times)."""
    out = []
    for i, s in enumerate(load_digits("test", limit=n).samples):
        keep = PATTERNS[i % len(PATTERNS)]
        values = {"text": s.text or "an odd number", "image": s.image, "audio": s.audio}
        out.append(Sample(None, **{m: v for m, v in values.items() if m in keep}, sample_rate=s.sample_rate))
    return out


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return partial_samples(28)


def logits(pipe: Pipeline, sample: Sample) -> np.ndarray:
    return pipe.predict_batch([sample]).logits[0]


@pytest.mark.parametrize("concurrent", [True, False])
def test_shared_pipeline_across_threads_is_bit_identical(tiny_bundle_pristine: Path, samples: list[Sample],
                                                         concurrent: bool):
    with Pipeline.from_bundle(tiny_bundle_pristine, concurrent=concurrent) as pipe:
        expected = [logits(pipe, s) for s in samples]
        results: dict[int, list[tuple[int, np.ndarray]]] = {t: [] for t in range(THREADS)}
        errors: list[BaseException] = []
        barrier = threading.Barrier(THREADS)

        def work(t: int) -> None:
            try:
                barrier.wait()  # all threads start together, so calls really overlap
                for r in range(ROUNDS):
                    for k in range(len(samples)):
                        i = (k + t * 5 + r) % len(samples)
                        results[t].append((i, logits(pipe, samples[i])))
            except BaseException as exc:  # reported below with the thread's traceback
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not errors, errors
        calls = sum(len(v) for v in results.values())
        assert calls == THREADS * ROUNDS * len(samples)
        for got in results.values():
            for i, value in got:
                assert np.array_equal(value, expected[i]), f"sample {i} differs under {THREADS} threads"
        # the threaded and sequential results also agree with one batch of all samples (same rows, same model)
        batch = pipe.predict_batch(samples).logits
        np.testing.assert_allclose(batch, np.stack(expected), rtol=1e-5, atol=1e-5)


def rss_mib() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def test_soak_of_thousands_of_predictions_keeps_rss_flat(tiny_bundle_pristine: Path, samples: list[Sample],
                                                        tmp_path: Path):
    """SOAK_CALLS predict() calls on real partial samples: RSS after warm-up grows < MAX_RSS_GROWTH_MIB."""
    inputs = [{"text": s.text, "image": s.image, "audio": s.audio, "sample_rate": s.sample_rate} for s in samples]
    before = rss_mib()
    start = time.perf_counter()
    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        first = [pipe.predict(**kw).probabilities for kw in inputs]  # type: ignore[arg-type]
        for i in range(WARMUP_CALLS):
            pipe.predict(**inputs[i % len(inputs)])  # type: ignore[arg-type]
        warm = rss_mib()
        samples_rss = []
        for i in range(SOAK_CALLS):
            result = pipe.predict(**inputs[i % len(inputs)])  # type: ignore[arg-type]
            if i % len(inputs) == 0:
                assert result.probabilities == first[0]  # still the same answer at call i
            if i % 500 == 0:
                samples_rss.append(round(rss_mib(), 2))
        end = rss_mib()
    seconds = time.perf_counter() - start
    figures = {"calls": SOAK_CALLS, "warmup_calls": WARMUP_CALLS, "seconds": round(seconds, 2),
               "ms_per_call": round(1000 * seconds / (SOAK_CALLS + WARMUP_CALLS + len(inputs)), 3),
               "rss_mib_before": round(before, 2), "rss_mib_after_warmup": round(warm, 2),
               "rss_mib_end": round(end, 2), "growth_after_warmup_mib": round(end - warm, 2),
               "rss_mib_every_500_calls": samples_rss}
    (tmp_path / "soak.json").write_text(json.dumps(figures, indent=2))
    print(f"\nsoak: {json.dumps(figures)} -> {tmp_path / 'soak.json'}")
    assert end - warm < MAX_RSS_GROWTH_MIB, figures
