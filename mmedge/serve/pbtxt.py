"""Triton model configurations: a small protobuf text-format writer and the config of each model kind.

Written as text (no tritonclient needed to export); the tests parse every file with Triton's own
model-config protobuf (tritonclient.grpc.model_config_pb2) and check it against the ONNX graphs.
"""

from __future__ import annotations

import json
from typing import Any

from mmedge.errors import InputError
from mmedge.specs import TensorSpec

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                 "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "bytes": "TYPE_STRING"}
KINDS = {"onnxruntime": "KIND_CPU", "tensorrt": "KIND_GPU"}
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}


class Enum(str):
    """An enum value: written bare (TYPE_FP32), not quoted."""


Fields = list[tuple[str, Any]]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid text-format string
    return str(value)


def render(fields: Fields, indent: int = 0) -> str:
    """Text format of (name, value) fields: dicts/Fields are messages, lists of scalars are repeated values."""
    pad, lines = "  " * indent, []
    for name, value in fields:
        if isinstance(value, dict):
            value = list(value.items())
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            lines += [f"{pad}{name} {{", render(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list):
            lines.append(f"{pad}{name}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return "\n".join(line for line in lines if line)


def dtype(name: str) -> Enum:
    """Triton's data type for a numpy/bundle dtype name."""
    if name not in TRITON_DTYPES:
        raise InputError(f"dtype {name} has no Triton equivalent (known: {', '.join(TRITON_DTYPES)})")
    return Enum(TRITON_DTYPES[name])


def tensor(name: str, dtype_name: str, dims: list[int]) -> Fields:
    """One input/output entry (dims without the batch axis; -1 for a dynamic axis)."""
    return [("name", name), ("data_type", dtype(dtype_name)), ("dims", dims)]


def spec_tensor(spec: TensorSpec) -> Fields:
    """An entry from a bundle tensor spec: the leading batch axis dropped, named axes as -1."""
    if not spec.shape or spec.shape[0] != "batch":
        raise InputError(f"tensor {spec.name} has no leading batch axis (shape {list(spec.shape)}); "
                         "Triton batching needs one")
    return tensor(spec.name, spec.dtype, [-1 if isinstance(d, str) else int(d) for d in spec.shape[1:]])


def batching(max_batch: int, delay_us: int, instances: int, kind: str) -> Fields:
    """max_batch_size, dynamic batching and the instance group shared by every non-ensemble model."""
    return [("max_batch_size", max_batch),
            ("dynamic_batching", [("max_queue_delay_microseconds", delay_us)]),
            ("instance_group", [("count", instances), ("kind", Enum(kind))])]


def component_config(name: str, platform: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                     settings: Fields) -> str:
    """config.pbtxt of one encoder/head model on `platform` (onnxruntime | tensorrt)."""
    head = [("name", name), ("platform", PLATFORMS[platform]), ("default_model_filename", model_file(platform))]
    body = [*head, *settings[:1]]
    body += [("input", spec_tensor(s)) for s in inputs] + [("output", spec_tensor(s)) for s in outputs]
    return render(body + settings[1:]) + "\n"


def model_file(platform: str) -> str:
    """The file name Triton loads for `platform`."""
    return "model.onnx" if platform == "onnxruntime" else "model.plan"


def python_config(name: str, inputs: list[Fields], outputs: list[Fields], settings: Fields) -> str:
    """config.pbtxt of a Python-backend model."""
    body = [("name", name), ("backend", "python"), *settings[:1]]
    body += [("input", t) for t in inputs] + [("output", t) for t in outputs]
    return render(body + settings[1:]) + "\n"


def ensemble_config(name: str, max_batch: int, inputs: list[Fields], outputs: list[Fields],
                    steps: list[tuple[str, dict[str, str], dict[str, str]]]) -> str:
    """config.pbtxt of the ensemble: steps are (model, {model input: ensemble tensor}, {model output: tensor})."""
    body: Fields = [("name", name), ("platform", "ensemble"), ("max_batch_size", max_batch)]
    body += [("input", t) for t in inputs] + [("output", t) for t in outputs]
    step_fields = []
    for model, ins, outs in steps:
        fields: Fields = [("model_name", model), ("model_version", -1)]
        fields += [("input_map", [("key", k), ("value", v)]) for k, v in ins.items()]
        fields += [("output_map", [("key", k), ("value", v)]) for k, v in outs.items()]
        step_fields.append(("step", fields))
    return render([*body, ("ensemble_scheduling", step_fields)]) + "\n"
