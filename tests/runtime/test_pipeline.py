"""The torch-free ONNX Runtime pipeline: predictions, missing modalities, concurrency, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mmedge.data.digits import load_digits
from mmedge.data.sample import Sample
from mmedge.errors import InputError
from mmedge.runtime.pipeline import Pipeline


@pytest.fixture(scope="module")
def pipe(tiny_bundle_pristine: Path):
    with Pipeline.from_bundle(tiny_bundle_pristine) as p:
        yield p


def test_runtime_needs_no_torch(tiny_bundle_pristine: Path, tmp_path: Path):
    import soundfile as sf
    from PIL import Image

    s = load_digits("test", limit=1).samples[0]
    Image.fromarray(s.image).save(tmp_path / "x.png")
    sf.write(tmp_path / "x.wav", s.audio, 8000)
    code = textwrap.dedent(f"""
        import sys

        class BlockTorch:  # any `import torch` now raises ImportError
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")

        sys.meta_path.insert(0, BlockTorch())
        from mmedge import Pipeline
        with Pipeline.from_bundle({str(tiny_bundle_pristine)!r}) as p:
            r = p.predict(text="a prime", image={str(tmp_path / "x.png")!r}, audio={str(tmp_path / "x.wav")!r})
        assert r.label in p.bundle.labels and "torch" not in sys.modules
        print("ok", r.label)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_import_mmedge_is_light():
    heavy = "('torch', 'onnxruntime', 'tensorrt', 'onnx')"
    code = f"import sys, mmedge; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_predict_every_subset(pipe: Pipeline):
    s = load_digits("test", limit=1).samples[0]
    for kwargs in ({"text": "an even number"}, {"image": s.image}, {"audio": s.audio, "sample_rate": 8000},
                   {"text": s.text or "a prime", "image": s.image, "audio": s.audio, "sample_rate": 8000}):
        result = pipe.predict(**kwargs)
        assert abs(sum(result.probabilities.values()) - 1.0) < 1e-5
        assert result.label == max(result.probabilities, key=result.probabilities.__getitem__)
        assert set(result.present) == {k for k in kwargs if k != "sample_rate"}
    timings = result.timings_ms
    assert {"preprocess", "encoder.text", "encoder.image", "encoder.audio", "fusion_head", "total"} <= set(timings)


def test_absent_encoder_is_skipped(pipe: Pipeline):
    s = load_digits("test", limit=1).samples[0]
    out = pipe.predict_batch([Sample(label=None, image=s.image)])
    assert "encoder.image" in out.timings_ns and "encoder.text" not in out.timings_ns


def test_concurrent_equals_sequential(pipe: Pipeline):
    ds = load_digits("test", limit=8)
    batch = pipe.preprocess(ds.samples)
    a = pipe.run_batch(batch, concurrent=True)
    b = pipe.run_batch(batch, concurrent=False)
    np.testing.assert_array_equal(a, b)


def test_matches_batched_and_single(pipe: Pipeline):
    ds = load_digits("test", limit=4)
    batched = pipe.predict_batch(ds.samples).probabilities
    single = np.stack([pipe.predict_batch([s]).probabilities[0] for s in ds.samples])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_encoders_run_only_on_rows_that_carry_their_modality(pipe: Pipeline, monkeypatch):
    d = load_digits("test", limit=3).samples
    full = [Sample(None, "a prime", x.image, x.audio, x.sample_rate) for x in d]
    mixed = [full[0], Sample(label=None, image=full[1].image), full[2]]  # row 1 has no text, no audio
    seen: dict[str, int] = {}
    encode = pipe.executor.encode

    def spy(feeds: dict[str, dict[str, np.ndarray]], concurrent: bool):
        seen.update({m: len(next(iter(f.values()))) for m, f in feeds.items()})
        return encode(feeds, concurrent)

    monkeypatch.setattr(pipe.executor, "encode", spy)
    embeddings = pipe.encode(pipe.preprocess(mixed), concurrent=False)
    assert seen == {"text": 2, "image": 3, "audio": 2}
    assert not embeddings["audio"][1].any() and not embeddings["text"][1].any()
    alone = pipe.encode(pipe.preprocess([full[2]]), concurrent=False)
    np.testing.assert_allclose(embeddings["audio"][2], alone["audio"][0], atol=1e-5)


def test_all_modalities_absent(pipe: Pipeline):
    with pytest.raises(InputError, match="all modalities are absent"):
        pipe.predict()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"image": "/nonexistent.png"}, "image file not found"),
    ({"audio": "/nonexistent.wav"}, "audio file not found"),
    ({"audio": np.zeros(0, dtype=np.float32), "sample_rate": 8000}, "non-empty"),
    ({"audio": np.zeros(100, dtype=np.float32)}, "needs its sample_rate"),
])
def test_bad_inputs(pipe: Pipeline, kwargs, message: str):
    with pytest.raises(InputError, match=message):
        pipe.predict(**kwargs)


# ---- every accepted input type, and the ones that are not ------------------------------------------
@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sample, Path, Path]:
    """A digit sample and its image/audio written as a real PNG and WAV."""
    import soundfile as sf
    from PIL import Image

    root = tmp_path_factory.mktemp("inputs")
    s = load_digits("test", limit=1).samples[0]
    Image.fromarray(s.image).save(root / "x.png")
    sf.write(root / "x.wav", s.audio, 8000, subtype="FLOAT")
    return s, root / "x.png", root / "x.wav"


def test_path_str_pil_and_array_give_the_same_prediction(pipe: Pipeline, digit_files):
    from PIL import Image

    s, png, wav = digit_files
    expected = pipe.predict(image=s.image, audio=s.audio, sample_rate=8000).probabilities
    with Image.open(png) as pil:
        for image, audio in ((png, wav), (str(png), str(wav)), (pil, wav)):
            got = pipe.predict(image=image, audio=audio)
            assert got.present == ["image", "audio"]
            assert got.probabilities == pytest.approx(expected, abs=1e-6)


def test_arrays_are_scaled_by_dtype(pipe: Pipeline):
    s = load_digits("test", limit=1).samples[0]
    pcm = np.round(np.clip(s.audio, -1, 1) * 32767).astype(np.int16)
    as_float = pipe.predict(audio=pcm.astype(np.float32) / 32768, sample_rate=8000).probabilities
    assert pipe.predict(audio=pcm, sample_rate=8000).probabilities == pytest.approx(as_float, abs=1e-6)
    wide = s.image.astype(np.uint16) * 257
    from_uint8 = pipe.predict(image=s.image).probabilities
    assert pipe.predict(image=wide).probabilities == pytest.approx(from_uint8, abs=1e-6)
    assert pipe.predict(image=s.image / 255.0).probabilities == pytest.approx(from_uint8, abs=1e-6)


def test_blank_text_is_absent(pipe: Pipeline):
    s = load_digits("test", limit=1).samples[0]
    assert pipe.predict(text="   ", image=s.image).present == ["image"]
    with pytest.raises(InputError, match="all modalities are absent"):
        pipe.predict(text=" \t ")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"image": 3}, r"image must be a file path \(str or pathlib.Path\), a PIL.Image.Image or a numpy array"),
    ({"audio": [0.0, 0.1]}, r"audio must be a file path \(str or pathlib.Path\) or a numpy array"),
    ({"text": b"an odd number"}, "text must be a str or None, got bytes"),
    ({"image": np.full((8, 8), 2.0)}, r"float pixels must be in \[0, 1\]"),
    ({"audio": np.zeros(800, dtype=np.int64), "sample_rate": 8000}, "unsupported dtype int64"),
    ({"audio": np.zeros(800, dtype=np.float32), "sample_rate": 1}, "sample rate 1 Hz"),
])  # fmt: skip
def test_unaccepted_inputs_are_one_line_input_errors(pipe: Pipeline, kwargs, message: str):
    with pytest.raises(InputError, match=message) as info:
        pipe.predict(**kwargs)
    assert type(info.value) is InputError and "\n" not in str(info.value)


def test_huge_image_file_is_refused(pipe: Pipeline, tmp_path: Path):
    from PIL import Image

    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    with pytest.raises(InputError, match="image too large") as info:
        pipe.predict(image=tmp_path / "bomb.png")
    assert type(info.value) is InputError


def test_a_closed_pipeline_says_so(tiny_bundle_pristine: Path) -> None:
    from mmedge.errors import BackendError

    pipe = Pipeline.from_bundle(tiny_bundle_pristine)
    pipe.close()
    pipe.close()  # idempotent
    with pytest.raises(BackendError, match=r"this pipeline is closed; create a new one with Pipeline\.from_bundle"):
        pipe.predict(text="a prime")
    with pytest.raises(BackendError, match="inactive runner"):
        pipe.runners["fusion_head"].infer({})
