"""The one dataclass ↔ JSON serializer: round trips of every manifest type, key-path errors."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mmedge.bundle import Artifact, Bundle, Component
from mmedge.config import RunConfig, from_dict
from mmedge.errors import BundleError, ConfigError
from mmedge.serialize import OMIT_NONE, from_json, to_json
from mmedge.specs import AudioSpec, ImageSpec, Preprocessing, TensorSpec, TextSpec

TEXT_IN = TensorSpec("input_ids", "int64", ("batch", "seq"), {"batch": (1, 1, 64), "seq": (1, 16, 16)})
EMB = TensorSpec("text_embedding", "float32", ("batch", 8), {"batch": (1, 1, 64)})
ART = Artifact("text.onnx", "a" * 64, 123, {"max_abs_diff": 1e-6, "samples": 4, "reference": "torch fp32"},
               {"opset": 17})
PRE = Preprocessing(text=TextSpec("tokenizer.json", 16), image=ImageSpec(32, 1, [0.5], [0.5], "bicubic"),
                    audio=AudioSpec(8000, 1.0))


def sample_bundle(root: Path) -> Bundle:
    """A bundle object with every field set to something other than its default."""
    comps = {"text": Component("text", "encoder", [TEXT_IN], [EMB], {"fp32": ART}),
             "fusion_head": Component("fusion_head", "head", [EMB], [EMB])}
    return Bundle(root=root, name="n", labels=["a", "b"], modalities=["text"], components=comps,
                  preprocessing=PRE, fusion={"op": "concat", "requires_all": False},
                  engines={"text": {"fp16": {"k": {"plan": "engines/x.plan"}}}}, provenance={"opset": 17},
                  metrics={"all": {"accuracy": 0.5}})


@pytest.mark.parametrize("obj", [TEXT_IN, EMB, ART, PRE, Preprocessing(audio=AudioSpec(16000, 0.5)),
                                 TextSpec("t.json", 8), ImageSpec(96, 3, [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]),
                                 AudioSpec(8000, 1.0), RunConfig()], ids=lambda o: type(o).__name__)
def test_round_trip(obj: Any) -> None:
    """to_json → json text → from_json gives an equal object of the same type."""
    data = json.loads(json.dumps(to_json(obj)))
    back = from_json(type(obj), data)
    assert back == obj and type(back) is type(obj)
    assert to_json(back) == data


def test_round_trip_bundle_and_component(tmp_path: Path) -> None:
    """Root comes from the caller, a component's name from its key; neither is written."""
    bundle = sample_bundle(tmp_path)
    data = json.loads(json.dumps(bundle.to_json()))
    assert "root" not in data and "name" not in data["components"]["text"]
    back = from_json(Bundle, data, given={"root": tmp_path})
    assert back == bundle
    assert back.components["fusion_head"].name == "fusion_head"
    assert Component.from_json("text", data["components"]["text"]) == bundle.components["text"]


def test_tuples_and_unions_are_restored() -> None:
    """Shapes mix named and fixed axes; ranges are (min, opt, max) tuples."""
    back = from_json(TensorSpec, json.loads(json.dumps(to_json(TEXT_IN))))
    assert back.shape == ("batch", "seq") and back.ranges["seq"] == (1, 16, 16)
    assert isinstance(back.ranges["seq"], tuple)


def test_run_config_matches_asdict() -> None:
    """The config document is what dataclasses.asdict gave before (the config digest is stable)."""
    cfg = RunConfig()
    assert cfg.to_dict() == dataclasses.asdict(cfg)


@pytest.mark.parametrize(("path", "value", "where"), [
    (("components", "text", "inputs", 0, "shape", 1), 1.5, r"components\.text\.inputs\[0\]\.shape\[1\]"),
    (("components", "text", "artifacts", "fp32", "bytes"), "123", r"components\.text\.artifacts\.fp32\.bytes"),
    (("preprocessing", "image", "size"), "32", r"preprocessing\.image\.size: expected int"),
    (("preprocessing", "audio", "clip_seconds"), None, r"preprocessing\.audio\.clip_seconds"),
    (("labels", 1), 2, r"labels\[1\]: expected str"),
    (("components", "text", "inputs", 0, "ranges", "seq"), [1, 2], r"ranges\.seq: expected 3 values"),
])
def test_wrong_type_names_key_path(tmp_path: Path, path: tuple[Any, ...], value: Any, where: str) -> None:
    """A wrong type is one error naming the full key path."""
    data = sample_bundle(tmp_path).to_json()
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(BundleError, match=where):
        from_json(Bundle, data, given={"root": tmp_path}, error=BundleError)


def test_unknown_and_missing_keys(tmp_path: Path) -> None:
    """Unknown keys and missing required keys are named with their path."""
    data = sample_bundle(tmp_path).to_json()
    data["preprocessing"]["image"]["gamma"] = 2.2
    with pytest.raises(ConfigError, match=r"preprocessing\.image: unknown key\(s\) \['gamma'\]"):
        from_json(Bundle, data, given={"root": tmp_path})
    del data["preprocessing"]["image"]["gamma"]
    del data["components"]["text"]["kind"]
    with pytest.raises(ConfigError, match=r"components\.text\.kind: required key is missing"):
        from_json(Bundle, data, given={"root": tmp_path})


def test_config_errors_name_file_and_path() -> None:
    """Config loading: ConfigError with the source and the key path; YAML's `2e-3` string is a float."""
    with pytest.raises(ConfigError, match=r"cfg\.yaml: model\.image\.mean\[0\]: expected float"):
        from_dict(RunConfig, {"model": {"image": {"mean": ["x"]}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int"):
        from_dict(RunConfig, {"train": {"epochs": True}})
    assert from_dict(RunConfig, {"train": {"lr": "2e-3"}}).train.lr == pytest.approx(0.002)


@dataclass
class _Optional:
    a: int | None = None
    b: str | None = field(default=None, metadata=OMIT_NONE)
    c: list[tuple[str, float]] = field(default_factory=list)
    d: dict[str, Any] = field(default_factory=dict)


def test_optional_fields_and_nested_containers() -> None:
    """None is written unless OMIT_NONE; lists of tuples and free-form dicts survive."""
    obj = _Optional(c=[("x", 1.0)], d={"k": [1, {"z": None}]})
    data = to_json(obj)
    assert data == {"a": None, "c": [["x", 1.0]], "d": {"k": [1, {"z": None}]}}
    assert from_json(_Optional, data) == obj
    assert from_json(_Optional, {"b": "y"}).b == "y"
    with pytest.raises(ConfigError, match=r"c\[0\]\[1\]: expected float"):
        from_json(_Optional, {"c": [["x", "nope"]]})


def test_preprocessing_access() -> None:
    """Membership and typed access by modality; a missing one is a ConfigError."""
    pre = Preprocessing(image=ImageSpec(32, 1, [0.5], [0.5]))
    assert "image" in pre and "text" not in pre and pre.modalities() == ["image"]
    assert pre.get("image") is pre.image and pre.get("smell") is None
    assert pre.to_json() == {"image": {"size": 32, "channels": 1, "mean": [0.5], "std": [0.5], "resize": "bilinear"}}
    with pytest.raises(ConfigError, match="no text preprocessing"):
        pre.need_text()
    assert AudioSpec(8000, 0.5).samples == 4000
