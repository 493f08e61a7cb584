"""`export-triton`: every config.pbtxt parses with Triton's model-config protobuf and matches the ONNX graphs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import onnx
import pytest

from mmedge.bundle import Bundle
from mmedge.errors import EngineError, InputError
from mmedge.serve.repository import RepositoryOptions, export_repository

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                         reason="the serve extra (pip install 'mmedge[serve]') is not installed")
ONNX_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT64: "TYPE_INT64",
              onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.INT32: "TYPE_INT32"}


def parse(path: Path) -> Any:
    """config.pbtxt → Triton's ModelConfig message (a parse error fails the test)."""
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(encoding="utf-8"), pb.ModelConfig())


def graph_io(path: Path) -> dict[str, tuple[str, list[int]]]:
    """name → (Triton dtype, dims without batch; -1 for a symbolic dim) of an ONNX graph's inputs and outputs."""
    graph = onnx.load(str(path), load_external_data=False).graph
    io = {}
    for value in [*graph.input, *graph.output]:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        assert dims[0] == -1, f"{path}:{value.name} has no dynamic batch axis"
        io[value.name] = (ONNX_TYPES[t.elem_type], dims[1:])
    return io


def config_io(cfg: Any) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in [*cfg.input, *cfg.output]}


@pytest.fixture(scope="module")
def repo(tiny_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(tiny_bundle_pristine, out, RepositoryOptions(max_queue_delay_us=500, instances=2))
    return out


def test_component_configs_match_the_onnx_graphs(repo: Path, tiny_bundle_pristine: Path) -> None:
    bundle = Bundle.load(tiny_bundle_pristine)
    for comp in [*bundle.modalities, "fusion_head"]:
        cfg = parse(repo / f"mmedge_{comp}" / "config.pbtxt")
        assert (cfg.name, cfg.platform, cfg.max_batch_size) == (f"mmedge_{comp}", "onnxruntime_onnx", 64)
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
        assert [(g.count, pb.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] == [(2, "KIND_CPU")]
        model = repo / f"mmedge_{comp}" / "1" / cfg.default_model_filename
        assert model.read_bytes() == bundle.artifact_path(comp, "fp32").read_bytes()
        assert config_io(cfg) == graph_io(model)
        assert [t.name for t in cfg.input] == [s.name for s in bundle.components[comp].inputs]


def test_ensemble_wires_preprocess_encoders_and_head(repo: Path, tiny_bundle_pristine: Path) -> None:
    bundle = Bundle.load(tiny_bundle_pristine)
    configs = {p.parent.name: parse(p) for p in repo.glob("*/config.pbtxt")}
    ens, pre = configs["mmedge"], configs["mmedge_preprocess"]
    assert ens.platform == "ensemble" and pre.backend == "python"
    assert [(t.name, pb.DataType.Name(t.data_type), list(t.dims)) for t in ens.input] == \
        [(n, "TYPE_STRING", [1]) for n in ("text", "image", "audio")]
    assert config_io(ens)["logits"] == ("TYPE_FP32", [len(bundle.labels)])
    # Every step's tensors exist in that model with the same dtype/dims as the tensor that feeds it.
    produced = {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        io = config_io(configs[step.model_name])
        for key, value in step.input_map.items():
            assert io[key] == produced[value], (step.model_name, key)
        for key, value in step.output_map.items():
            produced[value] = io[key]
    assert [s.model_name for s in ens.ensemble_scheduling.step] == \
        ["mmedge_preprocess", "mmedge_text", "mmedge_image", "mmedge_audio", "mmedge_fusion_head"]
    assert "present" in dict(ens.ensemble_scheduling.step[-1].input_map)
    assert produced["logits"] == config_io(ens)["logits"]
    spec = json.loads((repo / "mmedge_preprocess" / "1" / "preprocessing.json").read_text())
    assert spec["modalities"] == bundle.modalities and spec["preprocessing"]["text"]["tokenizer"] == "tokenizer.json"
    assert "tritonserver --model-repository" in (repo / "README.md").read_text()


def test_refuses_an_existing_folder_and_leaves_nothing_on_failure(tiny_bundle_pristine: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        export_repository(tiny_bundle_pristine, tmp_path / "taken", RepositoryOptions())
    with pytest.raises(EngineError, match="mmedge build"):  # the tiny bundle has no TensorRT engines
        export_repository(tiny_bundle_pristine, tmp_path / "trt", RepositoryOptions(platform="tensorrt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no half-written repository, no temp folder
    for bad, message in [({"platform": "tvm"}, "--platform"), ({"max_batch": 65}, "--max-batch must be 1..64"),
                         ({"precision": "int8"}, "no int8 artifact")]:
        with pytest.raises(Exception, match=message):
            export_repository(tiny_bundle_pristine, tmp_path / "x", RepositoryOptions(**bad))  # type: ignore[arg-type]


def test_tensorrt_platform_copies_the_built_plans(tiny_bundle: Path, tmp_path: Path) -> None:
    """Plans recorded in bundle.json (planted here: building needs a GPU) → tensorrt_plan models on KIND_GPU."""
    bundle = Bundle.load(tiny_bundle)
    import hashlib

    for comp in [*bundle.modalities, "fusion_head"]:
        plan = tiny_bundle / "engines" / f"{comp}.fp32.plan"
        plan.parent.mkdir(exist_ok=True)
        plan.write_bytes(f"plan of {comp}".encode())
        digest = hashlib.sha256(plan.read_bytes()).hexdigest()
        bundle.engines.setdefault(comp, {})["fp32"] = {"abc": {"plan": f"engines/{plan.name}", "sha256": digest,
                                                               "sidecar": f"engines/{comp}.fp32.json",
                                                               "built_at": "2026-01-01T00:00:00"}}
    bundle.save()
    out = tmp_path / "repo"
    export_repository(tiny_bundle, out, RepositoryOptions(platform="tensorrt", max_batch=8))
    cfg = parse(out / "mmedge_image" / "config.pbtxt")
    assert (cfg.platform, cfg.default_model_filename, cfg.max_batch_size) == ("tensorrt_plan", "model.plan", 8)
    assert pb.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind) == "KIND_GPU"
    assert (out / "mmedge_image" / "1" / "model.plan").read_bytes() == b"plan of image"
    assert config_io(cfg) == graph_io(tiny_bundle / "image.onnx")  # the plan's I/O is its source ONNX's
    assert pb.ModelInstanceGroup.Kind.Name(parse(out / "mmedge_preprocess" / "config.pbtxt")
                                           .instance_group[0].kind) == "KIND_CPU"
    shutil.rmtree(out)
    (tiny_bundle / "engines" / "text.fp32.plan").write_bytes(b"altered")
    with pytest.raises(EngineError, match="altered"):
        export_repository(tiny_bundle, out, RepositoryOptions(platform="tensorrt"))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_other_precisions_copy_their_artifacts(quantized_bundle_pristine: Path, tmp_path: Path,
                                               precision: str) -> None:
    bundle = Bundle.load(quantized_bundle_pristine)
    out = tmp_path / "repo"
    export_repository(quantized_bundle_pristine, out, RepositoryOptions(precision=precision))
    for comp in [*bundle.modalities, "fusion_head"]:
        model = out / f"mmedge_{comp}" / "1" / "model.onnx"
        assert model.read_bytes() == bundle.artifact_path(comp, precision).read_bytes()
        assert config_io(parse(out / f"mmedge_{comp}" / "config.pbtxt")) == graph_io(model)


def test_tensorrt_engines_for_several_gpus_need_a_choice(tiny_bundle: Path, tmp_path: Path) -> None:
    """Plans built on two GPUs: no silent pick of the newest (components could mix GPUs); --gpu chooses."""
    import hashlib

    bundle = Bundle.load(tiny_bundle)
    (tiny_bundle / "engines").mkdir(exist_ok=True)
    targets = {"NVIDIA H200": "10.3.0", "Orin": "10.3.0"}
    for comp in [*bundle.modalities, "fusion_head"]:
        for i, (gpu, trt) in enumerate(targets.items()):
            plan = tiny_bundle / "engines" / f"{comp}.{i}.plan"
            plan.write_bytes(f"{gpu} plan of {comp}".encode())
            # the image encoder's newest plan is Orin's, the others' are H200's: "newest" would mix GPUs
            built = f"2026-01-0{1 + (i if comp == 'image' else 1 - i)}T00:00:00"
            bundle.engines.setdefault(comp, {}).setdefault("fp32", {})[f"k{i}"] = {
                "plan": f"engines/{plan.name}", "sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),
                "sidecar": f"engines/{comp}.{i}.json", "built_at": built, "gpu": gpu, "tensorrt": trt}
    bundle.save()
    with pytest.raises(EngineError, match=r"several targets \(NVIDIA H200 / TensorRT 10\.3\.0; Orin / TensorRT "
                                          r"10\.3\.0\).*--gpu"):
        export_repository(tiny_bundle, tmp_path / "repo", RepositoryOptions(platform="tensorrt"))
    assert not (tmp_path / "repo").exists()
    with pytest.raises(EngineError, match="no TensorRT engines built on GPU 'A100'"):
        export_repository(tiny_bundle, tmp_path / "repo", RepositoryOptions(platform="tensorrt", gpu="A100"))
    export_repository(tiny_bundle, tmp_path / "repo", RepositoryOptions(platform="tensorrt", gpu="orin"))
    for comp in [*bundle.modalities, "fusion_head"]:
        plan = tmp_path / "repo" / f"mmedge_{comp}" / "1" / "model.plan"
        assert plan.read_bytes() == f"Orin plan of {comp}".encode()
    assert "built for **Orin / TensorRT 10.3.0**" in (tmp_path / "repo" / "README.md").read_text()
