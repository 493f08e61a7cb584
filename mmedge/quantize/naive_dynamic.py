"""The naive int8 a user tries first: ONNX Runtime's `quantize_dynamic` with its defaults on a whole graph.

Not one of mmedge's precisions: a benchmark peer (the `ort-naive-int8` configuration), so the
results table shows what mmedge's calibrated int8 gains over the one-line alternative.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from mmedge.errors import MissingDependencyError


def naive_dynamic_int8(model: bytes) -> bytes:
    """`quantize_dynamic(fp32, int8)` with ONNX Runtime's defaults, on ONNX bytes → ONNX bytes."""
    try:
        from onnxruntime.quantization import quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization needs the onnx package
        raise MissingDependencyError("onnx", "naive dynamic int8 (a benchmark peer)") from exc
    with tempfile.TemporaryDirectory(prefix="mmedge-naive-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        previous = logging.root.manager.disable  # the app's own level: restored, not reset to NOTSET
        logging.disable(max(previous, logging.WARNING))  # the quantizer logs per tensor, and advice, on root
        try:
            quantize_dynamic(src, dst)  # the defaults, as documented: int8 weights, every supported op
        finally:
            logging.disable(previous)
        return dst.read_bytes()
