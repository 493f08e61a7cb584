"""export-inputs writes the real feeds the runtime would use, in files Polygraphy and trtexec read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke

from mmedge.bundle import Bundle
from mmedge.exporters.real_inputs import (
    MANIFEST,
    POLYGRAPHY_FILE,
    export_inputs,
    load_polygraphy_inputs,
    pick_samples,
    real_feeds,
)
from mmedge.runtime.pipeline import Pipeline
from mmedge.specs import HEAD


@pytest.fixture(scope="module")
def exported(quantized_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return export_inputs(quantized_bundle_pristine, tmp_path_factory.mktemp("inputs"), count=4, batch=2)


def test_files_round_trip_through_polygraphy_and_raw(exported: dict, quantized_bundle_pristine: Path):
    from polygraphy.json import load_json

    bundle = Bundle.load(quantized_bundle_pristine)
    feeds = real_feeds(bundle, count=4, batch=2)
    assert set(exported["components"]) == set(bundle.components)
    for name, comp in exported["components"].items():
        ours = feeds[name].feeds
        theirs = load_json(comp["polygraphy_inputs"])  # Polygraphy's own reader
        assert len(theirs) == len(ours) == comp["feeds"] == 2
        for got, want in zip(theirs, ours, strict=True):
            assert list(got) == list(want)
            for key in want:
                assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key])
        for raw, want in zip(comp["trtexec_inputs"], ours, strict=True):
            for key, path in raw.items():
                back = np.fromfile(path, dtype=want[key].dtype.newbyteorder("<")).reshape(want[key].shape)
                assert np.array_equal(back, want[key])
        assert load_polygraphy_inputs(Path(comp["polygraphy_inputs"]))[0].keys() == ours[0].keys()
    assert json.loads((Path(exported["out"]) / MANIFEST).read_text()) == exported


def test_head_feeds_reproduce_the_pipeline(quantized_bundle_pristine: Path):
    """fp32 head on the exported head feeds gives the logits the fp32 Pipeline gives on the same raw samples."""
    import onnxruntime as ort

    bundle = Bundle.load(quantized_bundle_pristine)
    head = real_feeds(bundle, count=3, batch=3)[HEAD].feeds[0]
    samples = pick_samples(bundle, None, "val", 3)[:3]
    session = ort.InferenceSession(str(bundle.artifact_path(HEAD, "fp32")), providers=["CPUExecutionProvider"])
    logits = session.run(None, head)[0]
    with Pipeline.from_bundle(bundle, precision="fp32") as pipe:
        expected = pipe.predict_batch(samples).logits
    assert np.allclose(logits, expected, atol=1e-5)
    assert head["present"].dtype == np.float32 and set(np.unique(head["present"])) <= {0.0, 1.0}


def test_encoder_feeds_are_real_and_vary(exported: dict):
    text = [json.dumps(s) for s in exported["components"]["text"]["shapes"]]
    image = load_polygraphy_inputs(Path(exported["components"]["image"]["polygraphy_inputs"]))
    assert not np.array_equal(image[0]["pixel_values"][0], image[0]["pixel_values"][1])  # two different samples
    assert all('"input_ids": [2, ' in s for s in text)


def test_cli_json_and_commands(quantized_bundle_pristine: Path, tmp_path: Path):
    result = invoke("export-inputs", quantized_bundle_pristine, "--out", tmp_path / "in", "--count", "2", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    commands = manifest["components"]["text"]["commands"]
    assert set(commands) == {"polygraphy fp32", "polygraphy fp16", "polygraphy int8", "polygraphy int8-trt",
                             "trtexec fp32", "trtexec fp16", "trtexec int8-trt"}
    assert "--load-inputs" in commands["polygraphy int8"] and "--check-error-stat mean" in commands["polygraphy int8"]
    assert "--loadInputs=input_ids:" in commands["trtexec int8-trt"] and "--minShapes=input_ids:1x1" in commands[
        "trtexec int8-trt"]
    human = invoke("export-inputs", quantized_bundle_pristine, "--out", tmp_path / "in2", "--count", "1")
    assert human.exit_code == 0 and "polygraphy run" in human.output and POLYGRAPHY_FILE in human.output


def test_bad_count_is_an_input_error(tiny_bundle: Path, tmp_path: Path):
    result = invoke("export-inputs", tiny_bundle, "--out", tmp_path / "x", "--count", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
