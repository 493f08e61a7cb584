"""Every artifact (export and quantize) carries mmedge metadata_props and only the opset domains it uses;
the hashes in bundle.json are those of the final, stamped bytes."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mmedge.bundle import Bundle
from mmedge.exporters.onnx_meta import profile_shapes, prune_opset_imports, read_metadata, trtexec_shape_flags
from mmedge.io import sha256_file


def test_every_artifact_is_stamped_and_hashed_after(quantized_bundle_pristine: Path):
    bundle = Bundle.load(quantized_bundle_pristine)
    keys = set()
    for name, comp in bundle.components.items():
        for key, art in comp.artifacts.items():
            path = bundle.artifact_path(name, key)  # verifies the recorded sha256
            assert sha256_file(path) == art.sha256
            meta = read_metadata(path)
            keys.add(key)
            assert meta["mmedge.component"] == name and meta["mmedge.precision"] == key
            assert meta["mmedge.kind"] == comp.kind and json.loads(meta["mmedge.labels"]) == bundle.labels
            assert meta["mmedge.modality"] == (",".join(bundle.modalities) if comp.kind == "head" else name)
            shapes = json.loads(meta["mmedge.input_shapes"])
            assert list(shapes) == [s.name for s in comp.inputs]
            for spec in comp.inputs:
                assert shapes[spec.name]["min"][0] == 1 and shapes[spec.name]["max"][0] == 64  # the batch range
            assert meta["mmedge.trtexec_shapes"] == " ".join(trtexec_shape_flags(comp.inputs))
            model = onnx.load(str(path))
            used = {n.domain for n in model.graph.node} | {""}
            assert {o.domain for o in model.opset_import} <= used, (name, key, list(model.opset_import))
    assert keys == {"fp32", "fp16", "int8", "int8-trt"}


def test_text_shapes_come_from_bundle_ranges(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    text = bundle.components["text"].inputs
    seq = text[0].ranges["seq"]
    assert profile_shapes(text)["input_ids"] == ((1, seq[0]), (1, seq[1]), (64, seq[2]))
    assert trtexec_shape_flags(text) == [
        f"--minShapes=input_ids:1x{seq[0]},attention_mask:1x{seq[0]}",
        f"--optShapes=input_ids:1x{seq[1]},attention_mask:1x{seq[1]}",
        f"--maxShapes=input_ids:64x{seq[2]},attention_mask:64x{seq[2]}",
    ]


def test_prune_keeps_used_domains_and_the_default():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gelu", ["r"], ["y"], domain="com.microsoft")]
    opsets = [helper.make_opsetid(d, v) for d, v in (("", 17), ("com.microsoft", 1), ("ai.onnx.ml", 5),
                                                     ("org.pytorch.aten", 1))]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets)
    assert prune_opset_imports(model) == ["ai.onnx.ml", "org.pytorch.aten"]
    assert [o.domain for o in model.opset_import] == ["", "com.microsoft"]
    assert prune_opset_imports(model) == []


def test_missing_range_is_a_bundle_error():
    from mmedge.errors import BundleError
    from mmedge.specs import TensorSpec

    with pytest.raises(BundleError, match="dynamic axis 'seq' has no min/opt/max"):
        profile_shapes([TensorSpec("ids", "int64", ("batch", "seq"), {"batch": (1, 1, 64)})])
