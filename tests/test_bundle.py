"""bundle.json: round trip, hash verification and clear errors for broken bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmedge.bundle import MANIFEST, SCHEMA_VERSION, Bundle
from mmedge.errors import BundleError
from mmedge.io import sha256_file, write_json
from mmedge.specs import HEAD, ImageSpec


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
    """An altered artifact is refused when it is first used (load itself hashes nothing)."""
    with open(tiny_bundle / "audio.onnx", "ab") as fh:
        fh.write(b"\0")
    bundle = Bundle.load(tiny_bundle)
    bundle.artifact_path("image", "fp32")  # an untouched file passes
    with pytest.raises(BundleError, match=r"bundle file altered: .*audio\.onnx has sha256"):
        bundle.artifact_path("audio", "fp32")


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


# A bundle.json as the hand-written serializer before mmedge.serialize wrote it (one text encoder + head).
LEGACY_KEYS = ["schema_version", "name", "labels", "modalities", "fusion", "components", "preprocessing", "engines",
               "provenance", "metrics"]

EXPORTED_KEYS = [*LEGACY_KEYS[:7], "files", *LEGACY_KEYS[7:]]  # schema 2 adds the side files' hashes


def legacy_manifest(root: Path) -> dict[str, Any]:
    """Write two tiny artifact files and return an old-format bundle.json document naming them."""
    arts = {}
    for name in ("text", HEAD):
        (root / f"{name}.onnx").write_bytes(name.encode())
        arts[name] = {"file": f"{name}.onnx", "sha256": sha256_file(root / f"{name}.onnx"),
                      "bytes": len(name), "parity": {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "samples": 4,
                                                     "reference": "torch fp32"}, "settings": {"opset": 17}}
    ids = {"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"],
           "ranges": {"batch": [1, 1, 64], "seq": [1, 16, 16]}}
    emb = {"name": "text_embedding", "dtype": "float32", "shape": ["batch", 8], "ranges": {"batch": [1, 1, 64]}}
    present = {"name": "present", "dtype": "float32", "shape": ["batch", 1], "ranges": {"batch": [1, 1, 64]}}
    logits = {"name": "logits", "dtype": "float32", "shape": ["batch", 2], "ranges": {"batch": [1, 1, 64]}}
    return {
        "schema_version": 1, "name": "legacy", "labels": ["no", "yes"], "modalities": ["text"],
        "fusion": {"op": "concat", "requires_all": False},
        "components": {
            "text": {"kind": "encoder", "inputs": [ids, {**ids, "name": "attention_mask"}], "outputs": [emb],
                     "artifacts": {"fp32": arts["text"]}},
            HEAD: {"kind": "head", "inputs": [emb, present], "outputs": [logits], "artifacts": {"fp32": arts[HEAD]}},
        },
        "preprocessing": {"text": {"tokenizer": "tokenizer.json", "max_length": 16}},
        "engines": {}, "provenance": {"mmedge": "0.1.0", "opset": 17}, "metrics": {"all": {"accuracy": 0.9}},
    }


def test_legacy_manifest_is_refused_for_use_but_parses_byte_identical(tmp_path: Path):
    """An old bundle.json is refused by a plain load; read-only (legacy=True) it parses and saves byte for byte."""
    write_json(tmp_path / MANIFEST, legacy_manifest(tmp_path))
    before = (tmp_path / MANIFEST).read_bytes()
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}/bundle.json is schema 1 (written by an older mmedge): its tokenizer and torch reference are "
        f"not hashed; run: mmedge migrate {tmp_path} (it records their sha256 after you confirm the files are the "
        "ones you exported), or re-export")
    assert "\n" not in str(info.value)
    bundle = Bundle.load(tmp_path, legacy=True)
    assert bundle.preprocessing.need_text().max_length == 16 and bundle.preprocessing.image is None
    assert bundle.components["text"].inputs[0].ranges["seq"] == (1, 16, 16)
    assert bundle.components[HEAD].name == HEAD
    bundle.save()
    assert (tmp_path / MANIFEST).read_bytes() == before
    assert list(json.loads(before)) == LEGACY_KEYS


def test_legacy_manifest_never_reads_unhashed_files_and_migrates(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Schema 1: even read-only, the unhashed tokenizer is never read; after migrate it is recorded and verified."""
    from mmedge.migrate import migrate_bundle

    write_json(tmp_path / MANIFEST, legacy_manifest(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    with caplog.at_level("WARNING"):
        bundle = Bundle.load(tmp_path, legacy=True)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # refused on use, not warned about
    assert bundle.schema_version == 1 and bundle.unhashed == ["tokenizer.json"]
    with pytest.raises(BundleError, match=r"is schema 1 .*run: mmedge migrate"):
        bundle.verified_path("tokenizer.json")
    with pytest.raises(BundleError, match=r"is schema 1 .*run: mmedge migrate"):
        bundle.verify_preprocessing()
    report = migrate_bundle(tmp_path)
    assert report.migrated and list(report.hashed) == ["tokenizer.json"]
    assert report.hashed["tokenizer.json"].sha256 == sha256_file(tmp_path / "tokenizer.json")
    assert sorted(report.verified) == ["fusion_head.onnx", "text.onnx"]
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert list(data) == EXPORTED_KEYS and data["schema_version"] == SCHEMA_VERSION
    assert data["files"] == {"tokenizer.json": {"sha256": sha256_file(tmp_path / "tokenizer.json"), "bytes": 2}}
    migrated = Bundle.load(tmp_path)
    assert migrated.unhashed == [] and migrated.verified_path("tokenizer.json") == tmp_path / "tokenizer.json"
    (tmp_path / "tokenizer.json").write_text("[]")
    with pytest.raises(BundleError, match="bundle file altered"):
        Bundle.load(tmp_path).verify_preprocessing()


def test_exported_manifest_keys_and_resave(tiny_bundle: Path):
    """A tiny export's bundle.json has the documented keys in order and survives load → save unchanged."""
    before = (tiny_bundle / MANIFEST).read_bytes()
    data = json.loads(before)
    assert list(data) == EXPORTED_KEYS and data["schema_version"] == SCHEMA_VERSION == 2
    assert set(data["files"]) == {"tokenizer.json", "torch/model.safetensors", "torch/run.json"}
    assert list(data["preprocessing"]) == ["text", "image", "audio"]
    assert list(data["preprocessing"]["image"]) == ["size", "channels", "mean", "std", "resize"]
    assert list(data["components"]["text"]) == ["kind", "inputs", "outputs", "artifacts"]
    bundle = Bundle.load(tiny_bundle)
    assert isinstance(bundle.preprocessing.image, ImageSpec) and bundle.preprocessing.image.size == 32
    bundle.save()
    assert (tiny_bundle / MANIFEST).read_bytes() == before


def test_wrong_type_in_manifest_names_key_path(tmp_path: Path):
    """A wrong type in bundle.json is a BundleError naming the file and the key path."""
    data = legacy_manifest(tmp_path)
    data["preprocessing"]["text"]["max_length"] = "16"
    write_json(tmp_path / MANIFEST, data)
    with pytest.raises(BundleError, match=r"bundle\.json is malformed: preprocessing\.text\.max_length: expected int"):
        Bundle.load(tmp_path)


def test_coerce(tmp_path: Path):
    """A Bundle passes through untouched; a path is loaded and its files verified on use (schema 1: refused)."""
    from mmedge.migrate import migrate_bundle

    write_json(tmp_path / MANIFEST, legacy_manifest(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(BundleError, match="is schema 1"):
        Bundle.coerce(tmp_path)
    migrate_bundle(tmp_path)
    loaded = Bundle.coerce(tmp_path)
    assert Bundle.coerce(loaded) is loaded and loaded.name == "legacy"
    (tmp_path / "text.onnx").write_bytes(b"changed")
    with pytest.raises(BundleError, match="bundle file altered"):
        Bundle.coerce(str(tmp_path)).artifact_path("text", "fp32")


def test_layout_constants():
    """Folder names and the batch range live in mmedge.bundle (exporters and models import them)."""
    from mmedge.bundle import BATCH_RANGE, ENGINE_DIR, TORCH_DIR, batch_range
    from mmedge.exporters import export_run
    from mmedge.models import encoders

    assert (TORCH_DIR, ENGINE_DIR) == ("torch", "engines") and batch_range() == {"batch": BATCH_RANGE}
    assert export_run.TORCH_DIR is TORCH_DIR and encoders.batch_range is batch_range
