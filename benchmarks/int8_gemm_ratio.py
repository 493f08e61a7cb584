"""How much faster int8 matrix products are than fp32 on this CPU, in ONNX Runtime: the floor of any int8 row.

The int8 rows of `make bench` can only be as far below ONNX Runtime fp32 as the int8 kernels are below the fp32
ones on the products that dominate them. This times one MatMul per shape of the edge text encoder (MiniLM-L6:
QKV, attention output, FFN up and down) at a short text (12 tokens) and a batch of 8 x 16 tokens, in fp32 and
as ONNX Runtime's dynamic int8 (u8 activations x s8 per-channel weights: what mmedge's transformer int8
runs), side by side, interleaved, one thread. On a CPU without int8 dot-product instructions (no AVX-VNNI /
AVX-512 VNNI, no NEON dot product) int8 multiply-adds go through pairwise 16-bit sums, so int8 runs at well
under the 4x a byte-for-byte count suggests.

  python benchmarks/int8_gemm_ratio.py [--iters 400]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = [(384, 1152, "QKV"), (384, 384, "attention out"), (384, 1536, "FFN up"), (1536, 384, "FFN down")]
TOKENS = [12, 128]  # one short text; a batch of 8 x 16 tokens


def matmul_model(path: Path, rows: int, k: int, n: int, seed: int = 0) -> None:
    """An ONNX graph x[rows, k] @ W[k, n] with a constant random W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])],
                              [numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def session(path: Path) -> Any:
    """A one-thread CPU session with full optimization (as mmedge's runtime makes them)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_pair(fp32: Any, int8: Any, x: np.ndarray, iters: int) -> tuple[float, float]:
    """p50 seconds of each session on x, alternating which runs first."""
    times: dict[int, list[int]] = {0: [], 1: []}
    sessions = [fp32, int8]
    for i in range(iters + 50):
        for j in (0, 1) if i % 2 else (1, 0):
            start = time.perf_counter_ns()
            sessions[j].run(None, {"x": x})
            if i >= 50:
                times[j].append(time.perf_counter_ns() - start)
    return float(np.median(times[0])) / 1e9, float(np.median(times[1])) / 1e9


def main() -> None:
    """Print the fp32 / int8 table for every shape."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=400)
    args = parser.parse_args()
    print("| product | tokens | fp32 ms | int8 ms | fp32 GMAC/s | int8 GMAC/s | int8 / fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in TOKENS:
            for k, n, name in SHAPES:
                fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                matmul_model(fp32_path, rows, k, n)
                quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, per_channel=True)
                x = np.random.default_rng(1).standard_normal((rows, k)).astype(np.float32)
                t32, t8 = time_pair(session(fp32_path), session(int8_path), x, args.iters)
                macs = rows * k * n
                print(f"| {name} {k}x{n} | {rows} | {t32 * 1e3:.3f} | {t8 * 1e3:.3f} | {macs / t32 / 1e9:.1f} | "
                      f"{macs / t8 / 1e9:.1f} | {t8 / t32:.2f} |")


if __name__ == "__main__":
    main()
