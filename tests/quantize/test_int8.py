"""INT8: both flavours are valid ONNX that run on ORT, calibrated on real data; the TensorRT checker's verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from mmedge.bundle import Bundle
from mmedge.quantize.calibration import FeedReader, component_feeds, load_samples
from mmedge.quantize.int8 import TRT_SCHEME, family, quantize_int8
from mmedge.quantize.qdq_check import check_trt_qdq
from mmedge.runtime.pipeline import Pipeline
from mmedge.specs import HEAD, embedding_name


@pytest.fixture(scope="module")
def image_feeds(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    return component_feeds(bundle, load_samples(bundle, None, "train", 16), ["image"])


@pytest.mark.parametrize("key", ["int8", "int8-trt"])
def test_both_flavours_are_valid_onnx_and_run(quantized_bundle_pristine: Path, key: str):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        path = bundle.artifact_path(name, key)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with Pipeline.from_bundle(quantized_bundle_pristine, precision=key) as pipe:
        assert pipe.predict(text="seven").label in bundle.labels


def test_trt_flavour_passes_the_checker_and_cpu_flavour_does_not(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    for name in bundle.components:
        assert check_trt_qdq(bundle.artifact_path(name, "int8-trt")) == [], name
        art = bundle.artifact(name, "int8-trt")
        assert art.settings["qdq_check"] == "passed" and art.settings["scheme"]["symmetric_activations"]
    cpu = check_trt_qdq(bundle.artifact_path("image", "int8"))
    assert any("uint8" in p for p in cpu) or any("int32" in p for p in cpu)


def test_trt_flavour_keeps_the_audio_front_end_float(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    art = bundle.artifact("audio", "int8-trt")
    assert "/frontend/Log" in art.settings["excluded_nodes"]
    model = onnx.load(str(bundle.artifact_path("audio", "int8-trt")))
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    dft = next(n for n in model.graph.node if n.name == "/frontend/Conv")
    mel = next(n for n in model.graph.node if n.name == "/frontend/MatMul")
    assert dft.input[1] in floats and mel.input[1] in floats  # fixed DFT/mel weights, not dequantized


def test_checker_rejects_asymmetric_uint8(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    out = tmp_path / "u8.onnx"
    quantize_static(str(src), str(out), image_feeds.reader("image"), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    problems = check_trt_qdq(out)
    assert any("zero point is uint8" in p for p in problems)


def test_checker_rejects_per_tensor_weights(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    out = tmp_path / "pt.onnx"
    quantize_static(str(src), str(out), image_feeds.reader("image"), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=False,
                    op_types_to_quantize=["Conv", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    problems = check_trt_qdq(out)
    assert problems and all("per tensor" in p for p in problems), problems


def test_checker_rejects_a_float_model_and_missing_placement(tiny_bundle_pristine: Path):
    problems = check_trt_qdq(Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32"))
    assert problems[0].startswith("no QuantizeLinear/DequantizeLinear")
    assert any("Q/DQ placement" in p for p in problems)


def test_reader_is_re_iterable(image_feeds):
    reader = image_feeds.reader("image")
    first = [reader.get_next() for _ in range(len(reader))]
    assert reader.get_next() is None
    reader.rewind()
    assert all(np.array_equal(reader.get_next()["pixel_values"], f["pixel_values"]) for f in first)
    assert isinstance(reader, FeedReader)


def test_head_is_calibrated_on_real_encoder_outputs(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    samples = load_samples(bundle, None, "train", 8)
    feeds = component_feeds(bundle, samples, ["image", HEAD])
    head_feed = feeds.feeds[HEAD][0]
    with Pipeline.from_bundle(tiny_bundle_pristine) as pipe:
        batch = pipe.preprocess(samples.samples[:8])
        expected = pipe.encode(batch)
    np.testing.assert_allclose(head_feed[embedding_name("image")], expected["image"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(head_feed["present"], batch.present)


def test_quantize_int8_trt_scheme_directly(tiny_bundle_pristine: Path, image_feeds, tmp_path: Path):
    src = Bundle.load(tiny_bundle_pristine).artifact_path("image", "fp32")
    settings = quantize_int8(src, tmp_path / "image.int8-trt.onnx", image_feeds.reader("image"), target="tensorrt",
                             method="percentile")
    assert settings["scheme"] == TRT_SCHEME.to_json() and settings["calibration"] == {"method": "percentile"}
    assert family(onnx.load(str(src))) == "conv"
    assert check_trt_qdq(tmp_path / "image.int8-trt.onnx") == []
