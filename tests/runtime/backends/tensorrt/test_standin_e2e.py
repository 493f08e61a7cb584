"""The GPU path walked end to end on CPU: `mmedge build/predict/eval/bench --backend tensorrt` and
`Pipeline.from_bundle(backend="tensorrt")` through the real tensorrt backend, runner and CUDA-stream
executor, with only TensorRT and CUDA replaced by the stand-ins (standin_trt.py, standin_cuda.py).

Outputs are compared with the torch model stored in the bundle, not with the stand-in's own engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_one_line_error, invoke
from PIL import Image
from standin_cuda import StandinCuda
from trt_helpers import plant_plans

from mmedge import Pipeline
from mmedge.data.digits import load_digits
from mmedge.data.sample import Sample
from mmedge.errors import BackendError
from mmedge.specs import HEAD

ATOL = 1e-4  # fp32 engine (ONNX Runtime underneath) against PyTorch eager


@pytest.fixture()
def trt_bundle(tiny_bundle: Path, standin: StandinCuda) -> Path:
    """The tiny bundle with fp32 'engines' found in the cache and recorded by the real `mmedge build`."""
    plant_plans(tiny_bundle, "fp32")
    result = invoke("build", tiny_bundle, "--precision", "fp32", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(tiny_bundle.joinpath("bundle.json").read_text())["engines"]) == 4
    return tiny_bundle


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real PNG and WAV from the test split."""
    root = tmp_path_factory.mktemp("trt_files")
    s = load_digits("test", limit=1).samples[0]
    Image.fromarray(s.image).save(root / "digit.png")
    sf.write(root / "digit.wav", s.audio, s.sample_rate or 8000)
    return {"png": root / "digit.png", "wav": root / "digit.wav"}


def _samples(n: int = 6) -> list[Sample]:
    """Real samples with every pattern of missing modalities (full rows, partial rows, one modality)."""
    d = load_digits("test", limit=n).samples
    keep = [("text", "image", "audio"), ("image",), ("text", "audio"), ("text", "image", "audio"), ("audio",),
            ("image", "audio")]
    full = [Sample(None, s.text or "an odd number", s.image, s.audio, s.sample_rate) for s in d]
    return [Sample(None, **{m: getattr(s, m) for m in ks}, sample_rate=s.sample_rate)
            for s, ks in zip(full, keep, strict=False)]


def test_predict_cli_matches_torch(trt_bundle: Path, files: dict[str, Path]) -> None:
    args = ["--image", files["png"], "--audio", files["wav"], "--text", "an odd number", "--json"]
    got = invoke("predict", trt_bundle, "--backend", "tensorrt", *args)
    ref = invoke("predict", trt_bundle, "--backend", "torch", *args)
    assert got.exit_code == 0 and ref.exit_code == 0, got.output + ref.output
    got_p, ref_p = json.loads(got.output)["probabilities"], json.loads(ref.output)["probabilities"]
    assert got_p.keys() == ref_p.keys()
    np.testing.assert_allclose(list(got_p.values()), list(ref_p.values()), atol=ATOL)


@pytest.mark.parametrize("concurrent", [True, False])
def test_pipeline_partial_modalities_match_torch(trt_bundle: Path, concurrent: bool) -> None:
    samples = _samples()
    with Pipeline.from_bundle(trt_bundle, backend="torch") as ref:
        want = ref.predict_batch(samples).logits
    with Pipeline.from_bundle(trt_bundle, backend="tensorrt", concurrent=concurrent) as pipe:
        out = pipe.predict_batch(samples)
        again = pipe.predict_batch(samples).logits  # buffers reused: a second call must not see stale data
    np.testing.assert_allclose(out.logits, want, atol=ATOL)
    np.testing.assert_array_equal(again, out.logits)
    assert out.timings_ns["fusion_head"] > 0 and out.timings_ns["encoders"] > 0


def test_encoders_feed_the_head_on_the_device(trt_bundle: Path, standin: StandinCuda) -> None:
    sample = _samples(1)
    with Pipeline.from_bundle(trt_bundle, backend="tensorrt") as pipe:
        standin.trace.clear()
        pipe.predict_batch(sample)
        encoder_streams = {pipe.runners[m].stream for m in pipe.modalities}  # type: ignore[attr-defined]
        head_stream = pipe.runners[HEAD].stream  # type: ignore[attr-defined]
    kinds = [(s, what) for s, what in standin.trace]
    # embeddings go device-to-device into the head; encoders copy nothing back to the host
    assert sum(1 for s, w in kinds if s == head_stream and w == "dtod") == 3
    assert not any(w == "dtoh" for s, w in kinds if s in encoder_streams)
    assert ("wait" in {w for s, w in kinds if s == head_stream})
    assert len(encoder_streams | {head_stream}) == 4


def test_cuda_graph_replays_and_times_one_run(trt_bundle: Path, standin: StandinCuda) -> None:
    samples = _samples(1)
    with Pipeline.from_bundle(trt_bundle, backend="torch") as ref:
        want = ref.predict_batch(samples).logits
    with Pipeline.from_bundle(trt_bundle, backend="tensorrt", cuda_graph=True) as pipe:
        runner = pipe.runners["image"]
        for _ in range(2):
            standin.trace.clear()
            logits = pipe.predict_batch(samples).logits
            np.testing.assert_allclose(logits, want, atol=ATOL)
            ops = [w for s, w in standin.trace if s == runner.stream]  # type: ignore[attr-defined]
            h2d, compute = (f"event:{runner.timer.event(m):#x}" for m in ("h2d_done", "compute_done"))  # type: ignore[attr-defined]
            timed = ops[ops.index(h2d) + 1 : ops.index(compute)]
            assert timed == ["graph:execute"]  # the capture's warm-up run is outside compute_ms


def test_eval_cli_matches_torch(trt_bundle: Path) -> None:
    got = invoke("eval", trt_bundle, "--backend", "tensorrt", "--json")
    ref = invoke("eval", trt_bundle, "--backend", "torch", "--json")
    assert got.exit_code == 0 and ref.exit_code == 0, got.output + ref.output
    got_rows, ref_rows = json.loads(got.output)[0], json.loads(ref.output)[0]
    assert got_rows["subsets"].keys() == ref_rows["subsets"].keys()
    for subset, figures in ref_rows["subsets"].items():
        assert got_rows["subsets"][subset]["accuracy"] == pytest.approx(figures["accuracy"], abs=1e-9), subset


def test_bench_cli_runs_tensorrt_beside_onnxruntime(trt_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = invoke("bench", trt_bundle, "--backends", "onnxruntime,tensorrt,tensorrt-cudagraph", "--warmup", "1",
                    "--iters", "3", "--output", out, "--mode", "sequential")
    assert result.exit_code == 0, result.output
    rows = {r["config"]["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"onnxruntime", "tensorrt", "tensorrt-cudagraph"}
    for name in ("tensorrt", "tensorrt-cudagraph"):
        assert rows[name].get("error") is None and rows[name]["stats"]["p50_ms"] > 0
        stages = set(rows[name]["stages"])
        assert {"encoder.text", "encoder.image", "encoder.audio", "fusion_head", "encoders.concurrent"} <= stages
        assert {f"gpu.{c}.{s}" for c in ("image", HEAD) for s in ("h2d", "compute", "d2h")} <= stages
    assert not any(s.startswith("gpu.") for s in rows["onnxruntime"]["stages"])


def test_missing_engine_names_the_build_command(tiny_bundle: Path, standin: StandinCuda) -> None:
    result = invoke("predict", tiny_bundle, "--backend", "tensorrt", "--text", "seven")
    assert_one_line_error(result, f"mmedge build {tiny_bundle} --precision fp32")


def test_int8_on_tensorrt_means_the_trt_flavour(tiny_bundle: Path, standin: StandinCuda) -> None:
    result = invoke("predict", tiny_bundle, "--backend", "tensorrt", "--precision", "int8", "--text", "seven")
    assert_one_line_error(result, "--precision int8 --target tensorrt")


def test_inactive_and_closed(trt_bundle: Path) -> None:
    pipe = Pipeline.from_bundle(trt_bundle, backend="tensorrt")
    pipe.close()
    with pytest.raises(BackendError, match="closed"):
        pipe.predict(text="seven")
    runner = pipe.runners["text"]
    with pytest.raises(BackendError, match="inactive runner"):
        runner.infer({"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)})


def test_threads_sharing_one_pipeline_get_sequential_results(trt_bundle: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    samples = _samples()
    with Pipeline.from_bundle(trt_bundle, backend="tensorrt") as pipe:
        want = [pipe.predict_batch([s]).logits for s in samples]
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda i: pipe.predict_batch([samples[i % len(samples)]]).logits, range(48)))
    for i, logits in enumerate(got):
        np.testing.assert_array_equal(logits, want[i % len(samples)])


def test_output_larger_than_its_buffer_is_refused(trt_bundle: Path) -> None:
    from mmedge.errors import EngineError

    with Pipeline.from_bundle(trt_bundle, backend="tensorrt") as pipe:
        context = pipe.runners[HEAD]._context  # type: ignore[attr-defined]
        real = context.get_tensor_shape

        def too_big(name: str) -> tuple[int, ...]:  # a data-dependent output past the profile's maximum
            shape = tuple(real(name))
            return (shape[0], 10**6) if name == "logits" else shape

        context.get_tensor_shape = too_big
        with pytest.raises(EngineError, match=r"output 'logits' shape .* needs more than the .* bytes allocated"):
            pipe.predict(text="seven")
