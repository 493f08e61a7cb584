"""bundle.json: round trip, hash verification and clear errors for broken bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmedge.bundle import MANIFEST, Bundle
from mmedge.errors import BundleError
from mmedge.specs import HEAD


def test_load_round_trip(tiny_bundle: Path):
    bundle = Bundle.load(tiny_bundle)
    assert bundle.modalities == ["text", "image", "audio"]
    assert set(bundle.components) == {"text", "image", "audio", HEAD}
    assert bundle.labels[0] == "zero" and len(bundle.labels) == 10
    for comp in bundle.components.values():
        art = comp.artifacts["fp32"]
        assert len(art.sha256) == 64 and art.bytes > 0 and art.parity["max_abs_diff"] <= 1e-4
    text = bundle.components["text"].inputs[0]
    assert text.shape == ("batch", "seq") and text.ranges["seq"][2] == 16
    bundle.save()
    assert Bundle.load(tiny_bundle).to_json() == bundle.to_json()


def test_missing_file(tiny_bundle: Path):
    (tiny_bundle / "image.onnx").unlink()
    with pytest.raises(BundleError, match=r"bundle file missing: .*image\.onnx"):
        Bundle.load(tiny_bundle)


def test_altered_file(tiny_bundle: Path):
    with open(tiny_bundle / "audio.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match=r"bundle file altered: .*audio\.onnx has sha256"):
        Bundle.load(tiny_bundle)


def test_not_a_bundle(tmp_path: Path):
    with pytest.raises(BundleError, match="bundle folder not found"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"bundle\.json is missing"):
        Bundle.load(tmp_path)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(schema_version=99), "schema_version is 99"),
    (lambda d: d.pop("labels"), "malformed"),
    (lambda d: d["components"].pop(HEAD), "'fusion_head' component is missing"),
])
def test_malformed_manifest(tiny_bundle: Path, edit, message: str):
    path = tiny_bundle / MANIFEST
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        Bundle.load(tiny_bundle)


def test_invalid_json(tiny_bundle: Path):
    (tiny_bundle / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(tiny_bundle)


def test_missing_precision_names_the_fix(tiny_bundle: Path):
    bundle = Bundle.load(tiny_bundle)
    with pytest.raises(BundleError, match=r"mmedge quantize .* --precision int8"):
        bundle.artifact("image", "int8")
