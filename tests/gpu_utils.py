"""Helpers for the TensorRT/CUDA/ORT-GPU tests: skip reasons and a tiny real bundle.

The bundle is built here with onnx.helper (no torch, no export code) so these tests stand
alone: text (Gather + masked mean), image (Flatten + MatMul), audio (MatMul) encoders and a
fusion head (Concat + MatMul + present-mask term), each as fp32 and fp16 ONNX (fp16 = float16
weights and math, float32 I/O, as the exporter makes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

D = 8  # embedding size
LABELS = ["zero", "one", "two"]
VOCAB = 32
IMAGE = (3, 8, 8)
SAMPLES = 256
BATCH = (1, 2, 4)
SEQ = (1, 8, 16)


# ---- skip logic ------------------------------------------------------------------------------
def trt_skip_reason() -> str | None:
    """Why TensorRT tests cannot run here, or None."""
    from mmedge.errors import MissingDependencyError
    from mmedge.runtime.backends.tensorrt.env import require_tensorrt

    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return f"TensorRT not available: {exc}"
    return None


def gpu_skip_reason() -> str | None:
    """Why CUDA tests cannot run here (no cuda-python/pycuda, no GPU or driver), or None."""
    from mmedge.runtime.cuda.select import probe_cuda

    ok, why = probe_cuda()
    return None if ok else f"no usable CUDA GPU: {why}"


def ort_provider_skip_reason(provider: str) -> str | None:
    """Why an ONNX Runtime GPU provider cannot be used here, or None."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return f"{provider} not in onnxruntime providers {ort.get_available_providers()}"
    return gpu_skip_reason()


_GPU = gpu_skip_reason()
_TRT = trt_skip_reason()
requires_gpu = pytest.mark.skipif(_GPU is not None, reason=_GPU or "")
requires_trt = pytest.mark.skipif(_TRT is not None, reason=_TRT or "")


# ---- tiny bundle -----------------------------------------------------------------------------
def _graph_parts(precision: str) -> tuple[int, Any]:
    from onnx import TensorProto

    return (TensorProto.FLOAT16, np.float16) if precision == "fp16" else (TensorProto.FLOAT, np.float32)


def _init(name: str, array: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any], name: str) -> Any:
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mmedge-tests"
    )
    model.ir_version = 8
    return model


def _float_in(name: str, dt: int, cast_name: str) -> list[Any]:
    """Cast a float32 graph input to the compute dtype (no-op Identity for fp32)."""
    from onnx import TensorProto, helper

    if dt == TensorProto.FLOAT:
        return [helper.make_node("Identity", [name], [cast_name])]
    return [helper.make_node("Cast", [name], [cast_name], to=dt)]


def _float_out(src: str, name: str) -> Any:
    from onnx import TensorProto, helper

    return helper.make_node("Cast", [src], [name], to=TensorProto.FLOAT)


def text_model(precision: str, rng: np.random.Generator) -> Any:
    """input_ids/attention_mask int64 [batch, seq] -> text_embedding float32 [batch, D]."""
    from onnx import TensorProto, helper

    dt, np_dt = _graph_parts(precision)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=dt),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count0"], keepdims=1),
        helper.make_node("Max", ["count0", "one"], ["count"]),
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("Tanh", ["mean"], ["act"]),
        _float_out("act", "text_embedding"),
    ]
    inits = [
        _init("table", rng.normal(size=(VOCAB, D)).astype(np_dt)),
        _init("axis1", np.array([1], dtype=np.int64)),
        _init("axis2", np.array([2], dtype=np.int64)),
        _init("one", np.array(1, dtype=np_dt)),
    ]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "attention_mask")
    ]
    outputs = [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", D])]
    return _model(nodes, inputs, outputs, inits, "text")


def dense_model(precision: str, rng: np.random.Generator, kind: str) -> Any:
    """image: pixel_values [batch, 3, 8, 8]; audio: waveform [batch, 256] -> <kind>_embedding [batch, D]."""
    from onnx import TensorProto, helper

    dt, np_dt = _graph_parts(precision)
    shape: list[str | int] = ["batch", *IMAGE] if kind == "image" else ["batch", SAMPLES]
    name = "pixel_values" if kind == "image" else "waveform"
    width = int(np.prod(IMAGE)) if kind == "image" else SAMPLES
    nodes = [
        *_float_in(name, dt, "x"),
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["act"]),
        _float_out("act", f"{kind}_embedding"),
    ]
    inits = [
        _init("w", (rng.normal(size=(width, D)) / np.sqrt(width)).astype(np_dt)),
        _init("b", rng.normal(size=(D,)).astype(np_dt)),
    ]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)]
    outputs = [helper.make_tensor_value_info(f"{kind}_embedding", TensorProto.FLOAT, ["batch", D])]
    return _model(nodes, inputs, outputs, inits, kind)


def head_model(precision: str, rng: np.random.Generator) -> Any:
    """Three embeddings + present [batch, 3] -> logits [batch, n_labels]."""
    from onnx import TensorProto, helper

    dt, np_dt = _graph_parts(precision)
    names = ["text_embedding", "image_embedding", "audio_embedding", "present"]
    nodes = [n for i, name in enumerate(names) for n in _float_in(name, dt, f"c{i}")]
    nodes += [
        helper.make_node("Concat", ["c0", "c1", "c2"], ["cat"], axis=1),
        helper.make_node("MatMul", ["cat", "w"], ["a"]),
        helper.make_node("MatMul", ["c3", "p"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["ab"]),
        helper.make_node("Add", ["ab", "bias"], ["out"]),
        _float_out("out", "logits"),
    ]
    n = len(LABELS)
    inits = [
        _init("w", rng.normal(size=(3 * D, n)).astype(np_dt)),
        _init("p", rng.normal(size=(3, n)).astype(np_dt)),
        _init("bias", rng.normal(size=(n,)).astype(np_dt)),
    ]
    inputs = [helper.make_tensor_value_info(m, TensorProto.FLOAT, ["batch", D]) for m in names[:3]]
    inputs.append(helper.make_tensor_value_info("present", TensorProto.FLOAT, ["batch", 3]))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n])]
    return _model(nodes, inputs, outputs, inits, "fusion_head")


def _specs() -> dict[str, tuple[list[Any], list[Any]]]:
    from mmedge.specs import TensorSpec

    b = {"batch": BATCH}
    emb = {m: TensorSpec(f"{m}_embedding", "float32", ("batch", D), b) for m in ("text", "image", "audio")}
    text_in = [
        TensorSpec(n, "int64", ("batch", "seq"), {**b, "seq": SEQ}) for n in ("input_ids", "attention_mask")
    ]
    return {
        "text": (text_in, [emb["text"]]),
        "image": ([TensorSpec("pixel_values", "float32", ("batch", *IMAGE), b)], [emb["image"]]),
        "audio": ([TensorSpec("waveform", "float32", ("batch", SAMPLES), b)], [emb["audio"]]),
        "fusion_head": (
            [*emb.values(), TensorSpec("present", "float32", ("batch", 3), b)],
            [TensorSpec("logits", "float32", ("batch", len(LABELS)), b)],
        ),
    }


def make_tiny_bundle(root: Path, precisions: tuple[str, ...] = ("fp32", "fp16"), seed: int = 0) -> Path:
    """Write a complete, loadable bundle (ONNX files + bundle.json) under `root`; return root."""
    import onnx

    from mmedge.bundle import Bundle, Component

    root.mkdir(parents=True, exist_ok=True)
    specs = _specs()
    components = {
        name: Component(name, "head" if name == "fusion_head" else "encoder", ins, outs)
        for name, (ins, outs) in specs.items()
    }
    bundle = Bundle(
        root=root,
        name="tiny",
        labels=list(LABELS),
        modalities=["text", "image", "audio"],
        components=components,
        preprocessing={},
    )
    for precision in precisions:
        rng = np.random.default_rng(seed)  # same weights for every precision
        models = {
            "text": text_model(precision, rng),
            "image": dense_model(precision, rng, "image"),
            "audio": dense_model(precision, rng, "audio"),
            "fusion_head": head_model(precision, rng),
        }
        for name, model in models.items():
            onnx.checker.check_model(model)
            file = f"{name}.{precision}.onnx"
            onnx.save(model, str(root / file))
            bundle.add_artifact(name, precision, file)
    bundle.save()
    return root


def make_feeds(batch: int = 2, seq: int = 8, seed: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Host feeds for each encoder, and for the head the present mask (all present)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[0, seq // 2 :] = 0
    return {
        "text": {
            "input_ids": rng.integers(0, VOCAB, size=(batch, seq)).astype(np.int64),
            "attention_mask": mask,
        },
        "image": {"pixel_values": rng.normal(size=(batch, *IMAGE)).astype(np.float32)},
        "audio": {"waveform": rng.normal(size=(batch, SAMPLES)).astype(np.float32)},
        "fusion_head": {"present": np.ones((batch, 3), dtype=np.float32)},
    }


def ort_cpu(
    bundle_root: Path, component: str, precision: str, feed: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Reference outputs from ONNX Runtime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(bundle_root / f"{component}.{precision}.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def ort_cpu_pipeline(
    bundle_root: Path, precision: str, feeds: dict[str, dict[str, np.ndarray]]
) -> np.ndarray:
    """Logits of the whole tiny pipeline on ONNX Runtime CPU (all modalities present)."""
    head_feed = dict(feeds["fusion_head"])
    for modality in ("text", "image", "audio"):
        head_feed.update(ort_cpu(bundle_root, modality, precision, feeds[modality]))
    return ort_cpu(bundle_root, "fusion_head", precision, head_feed)["logits"]
