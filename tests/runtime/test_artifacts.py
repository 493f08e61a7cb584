"""Verified artifact bytes: what a runtime loads from memory is exactly what bundle.json hashed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BundleError
from mmedge.runtime.artifacts import artifact_bytes


def test_bytes_match_the_file(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    assert artifact_bytes(bundle, "text", "fp32") == (tiny_bundle_pristine / "text.onnx").read_bytes()


def test_altered_missing_and_unhashed_files_are_refused(tiny_bundle: Path):
    (tiny_bundle / "audio.onnx").write_bytes(b"garbage")
    with pytest.raises(BundleError, match=r"bundle file altered: .*audio\.onnx"):
        artifact_bytes(Bundle.load(tiny_bundle, verify=True), "audio", "fp32")
    assert artifact_bytes(Bundle.load(tiny_bundle, verify=False), "audio", "fp32") == b"garbage"
    bundle = Bundle.load(tiny_bundle)
    (tiny_bundle / "image.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        artifact_bytes(bundle, "image", "fp32")
