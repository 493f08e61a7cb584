"""Verified artifact bytes: read a bundle file once, check its sha256 against bundle.json, hand out the bytes.

OpenVINO compiles from these bytes, so the file is read once and what runs is exactly what was hashed
(no window between the check and the read). ONNX Runtime instead reads a Bundle-verified path, and its
graph cache re-hashes the bytes it optimizes on a miss (see onnxruntime/graph_cache.py).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mmedge.errors import BundleError

if TYPE_CHECKING:
    from mmedge.bundle import Bundle


def verified_bytes(bundle: Bundle, relative: str, key: str = "") -> bytes:
    """Contents of a bundle file, confined and sha256-checked against bundle.json (BundleError otherwise)."""
    full = bundle.path(relative)
    expected = bundle.recorded_sha256(relative)
    if not full.is_file() or (bundle.verify_hashes and expected is None):
        bundle.verified_path(relative, key)  # raises the bundle's own error (missing file, no hash)
    data = full.read_bytes()
    if bundle.verify_hashes and expected is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise BundleError(f"bundle file altered: {full} has sha256 {actual[:12]}…, bundle.json expects "
                              f"{expected[:12]}…; re-run mmedge export (or quantize)")
    return data


def artifact_bytes(bundle: Bundle, component: str, precision: str) -> bytes:
    """Verified bytes of a component's artifact at a precision (artifact key)."""
    art = bundle.artifact(component, precision)
    return verified_bytes(bundle, art.file, f"components.{component}.artifacts.{precision}.file")
