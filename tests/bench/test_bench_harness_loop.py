"""The interleaved loop with stand-in pipelines: round-robin order, warm-up, failures, workload, suites."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from mmedge.bench import annotate
from mmedge.bench.harness import BenchSpec, run_bench
from mmedge.bench.measure import HEADLINE, SWITCH, Contender, LoopSettings, interleave
from mmedge.bench.report import BenchConfig, BenchReport, load_json
from mmedge.bench.suite import load_suite, machine_class, run_suite
from mmedge.bench.summary import to_markdown
from mmedge.bench.workload import Workload, load_samples, sample_batches
from mmedge.data.preprocess import Batch
from mmedge.data.sample import Sample
from mmedge.errors import InputError

DATA = Path(__file__).parent / "data"


class FakePipeline:
    """Records every run_batch call in a shared log; optionally fails on the n-th call."""

    def __init__(self, name: str, log: list[tuple[str, int]], fail_at: int | None = None) -> None:
        self.name, self.log, self.fail_at, self.calls = name, log, fail_at, 0

    def run_batch(self, batch: Batch, timings: dict[str, int], concurrent: bool | None = None) -> np.ndarray:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("backend compiler failed\nlong traceback text")
        self.log.append((self.name, int(batch.present[0, 0])))
        timings.update({"encoder.image": 10, "encoders": 20, "fusion_head": 5})
        return np.zeros((len(batch), 2), dtype=np.float32)


def _workload(n: int) -> Workload:
    batches = [Batch({}, np.full((1, 1), k, dtype=np.float32), None) for k in range(n)]
    return Workload("fake", "test", 1, ["image"], [[Sample(label=0)] for _ in range(n)], batches)


def _contenders(log: list[tuple[str, int]], fail: dict[str, int] | None = None) -> list[Contender]:
    fail = fail or {}
    return [Contender(BenchConfig(n, "fp32", label=n), FakePipeline(n, log, fail.get(n))) for n in "ABC"]  # type: ignore[arg-type]


def test_round_robin_with_rotated_start_and_unrecorded_warmup() -> None:
    log: list[tuple[str, int]] = []
    contenders = _contenders(log)
    rounds, wall = interleave(contenders, _workload(2), LoopSettings(warmup=2, iters=3, phases=(HEADLINE,)))
    assert rounds == 3 and wall > 0
    primed = 3 * 2  # each contender once over each distinct batch
    measured = log[primed + 2 * 3 :]
    assert [name for name, _ in measured] == ["A", "B", "C", "B", "C", "A", "C", "A", "B"]
    assert [k for _, k in measured] == [0, 0, 0, 1, 1, 1, 0, 0, 0]  # inputs rotate per round
    for c in contenders:
        assert len(c.times.samples(HEADLINE)) == 3  # warm-up dropped
        assert c.times.samples("encoder.image") == [10, 10, 10]  # headline mode here is concurrent
        assert c.error is None


def test_a_visit_runs_its_calls_back_to_back_after_one_timed_apart() -> None:
    log: list[tuple[str, int]] = []
    contenders = _contenders(log)
    rounds, _ = interleave(contenders, _workload(1), LoopSettings(warmup=1, iters=2, phases=(SWITCH, HEADLINE)))
    assert rounds == 2
    measured = [name for name, _ in log[-2 * 3 * 2 :]]
    # each configuration's calls stay together (warm caches), its first call right after another's
    assert measured == ["A", "A", "B", "B", "C", "C", "B", "B", "C", "C", "A", "A"]
    for c in contenders:
        assert len(c.times.samples("after_switch")) == 2 and len(c.times.samples(HEADLINE)) == 2


def test_a_failing_configuration_is_reported_not_fatal() -> None:
    log: list[tuple[str, int]] = []
    contenders = _contenders(log, {"B": 1, "C": 4})  # B fails on its first call, C mid-measurement
    rounds, _ = interleave(contenders, _workload(1), LoopSettings(warmup=1, iters=5, phases=(HEADLINE,)))
    a, b, c = contenders
    assert rounds == 5 and a.error is None and len(a.times.samples(HEADLINE)) == 5
    assert b.error == "first run: RuntimeError: backend compiler failed"
    assert c.error is not None and c.error.startswith("model phase: RuntimeError")


def test_failed_row_renders(tmp_path: Path) -> None:
    from mmedge.bench.harness import _result
    from mmedge.bench.report import save_json

    c = Contender(BenchConfig("torch-compile", "fp32", label="torch-compile/fp32/b1"), None, error="load: boom")
    result = _result(c, 1, None, {}, ["image"])
    assert result.failed and result.stats.count == 0 and result.ratio_to_reference is None
    report = BenchReport({}, [result], reference=result.config.key)
    again = load_json(save_json(report, tmp_path / "r.json"))
    assert again.results[0].error == "load: boom"
    md = to_markdown(again)
    assert "| torch-compile/fp32/b1 | failed |" in md and "failed: load: boom" in md


def test_sample_batches_cycle_a_small_pool() -> None:
    samples = [Sample(label=i) for i in range(3)]
    assert [[s.label for s in b] for b in sample_batches(samples, 2)] == [[0, 1]]
    assert [[s.label for s in b] for b in sample_batches(samples, 5)] == [[0, 1, 2, 0, 1]]
    assert len(sample_batches(samples, 1)) == 3
    with pytest.raises(InputError):
        sample_batches(samples, 0)


def test_real_samples_carry_exactly_the_benchmarked_modalities() -> None:
    samples = load_samples("digits", "test", ["text", "audio"], pool=6)
    assert len(samples) == 6
    assert all(s.text and s.audio is not None and s.image is None for s in samples)
    assert len({s.text for s in samples}) > 1  # real, varied inputs
    with pytest.raises(InputError):
        load_samples("digits", "test", ["image"], pool=0)


def test_accuracy_key() -> None:
    assert annotate.accuracy_key(["text", "image", "audio"], ["text", "image", "audio"]) == "all"
    assert annotate.accuracy_key(["text", "image", "audio"], ["audio", "text"]) == "text+audio"


@pytest.mark.skipif(os.name != "posix", reason="needs a shell script as a fake tegrastats")
def test_power_with_a_fake_tegrastats(
    tiny_bundle_pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (DATA / "tegrastats_jp6_orin_nano.txt").read_text().splitlines()
    fake = tmp_path / "bin" / "tegrastats"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\nimport time\nlines = {lines!r}\ni = 0\n"
        "while True:\n    print(lines[i % len(lines)], flush=True)\n    i += 1\n    time.sleep(0.02)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    spec = BenchSpec(
        tiny_bundle_pristine,
        ["onnxruntime"],
        warmup=0,
        iters=2,
        stages=False,
        pool=2,
        power=True,
        power_seconds=0.3,
    )
    (r,) = run_bench(spec).results
    assert r.power is not None and r.power["mean_mw"] > 0 and r.power["calls"] >= 1
    assert r.power["energy_mj_per_inference"] > 0 and r.power["source"] == "VDD_IN"


def _suite(tmp_path: Path, bundle: Path, extra: str = "") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "title: test suite\nroot: .\nresults_dir: results\nmachine_class: testbox\n"
        f"bundles:\n  - name: tiny\n    path: {bundle}\n"
        "  - name: missing\n    path: nowhere\n    optional: true\n"
        "bench:\n  backends: [onnxruntime]\n  precisions: [fp32, int8]\n  batches: [1]\n"
        f"  warmup: 0\n  iters: 2\n  stages: false\n  pool: 2\n{extra}"
    )
    return path


def test_suite_runs_and_writes_the_machine_class_folder(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    report, out = run_suite(_suite(tmp_path, tiny_bundle_pristine), {"iters": 3})
    assert out == tmp_path / "results" / "testbox"
    assert sorted(p.name for p in out.iterdir()) == ["latency.png", "results.json", "results.md"]
    (r,) = report.results  # int8 is skipped (the bundle lacks it), the optional bundle too
    assert r.config.key == "tiny/onnxruntime/fp32/b1" and r.stats.count == 3
    assert report.env["bench_suite"]["skipped"][0].startswith("missing:")
    assert "tiny/onnxruntime/fp32/b1" in (out / "results.md").read_text()


def test_suite_errors(tmp_path: Path, tiny_bundle_pristine: Path) -> None:
    with pytest.raises(InputError, match="suite file not found"):
        load_suite(tmp_path / "none.yaml")
    with pytest.raises(InputError, match="unknown key"):
        run_suite(_suite(tmp_path, tiny_bundle_pristine, "  itters: 3\n"))
    assert machine_class().endswith("c")


@pytest.mark.parametrize("warmup", [0, 10])
def test_auto_mode_trials_run_after_priming_and_before_measured_rounds(tiny_bundle_pristine: Path, warmup: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mmedge.bench import measure
    from mmedge.bench.workload import build_workload
    from mmedge.runtime.pipeline import Pipeline

    mods = ["text", "image", "audio"]
    samples = load_samples("digits", "test", mods, 4, 0)
    with Pipeline.from_bundle(tiny_bundle_pristine, threads=1) as pipe:  # concurrent="auto"
        auto = pipe.executor.auto  # type: ignore[attr-defined]
        trials: list[bool] = []
        real_record = auto.record
        monkeypatch.setattr(auto, "record", lambda key, conc, ns: (trials.append(conc), real_record(key, conc, ns)))
        after_prime: list[int] = []
        real_prime = measure.prime
        monkeypatch.setattr(measure, "prime", lambda *a, **k: (real_prime(*a, **k), after_prime.append(len(trials))))
        at_first_measured: list[int] = []
        real_round = measure._round

        def spy_round(runner: object, contenders: object, r: int, record: bool) -> None:
            if record and not at_first_measured:
                at_first_measured.append(len(trials))
            real_round(runner, contenders, r, record)  # type: ignore[arg-type]

        monkeypatch.setattr(measure, "_round", spy_round)
        workload = build_workload(pipe, samples, 1, "digits", "test", mods)
        contender = Contender(BenchConfig("onnxruntime", "fp32", label="ort"), pipe)
        settings = LoopSettings(warmup=warmup, iters=10, phases=(SWITCH, HEADLINE), concurrent="auto")
        interleave([contender], workload, settings)
    assert contender.error is None
    # priming runs fixed modes (no trial made back to back there); the trials run in the warm-up rounds, amid
    # the traffic of the measured ones (or right after, when the warm-up is too short), never in them
    assert after_prime == [0]
    assert at_first_measured == [len(trials)] and len(trials) >= 18
    assert auto.pending() == 0 and auto.decided
