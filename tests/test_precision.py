"""Precision as one value: parsing, validation against a real bundle, the artifact each backend runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmedge.bundle import Bundle
from mmedge.errors import BackendError, BundleError, InputError
from mmedge.precision import Precision, artifact_key, parse_list
from mmedge.runtime.backends import available_backends

MIXED = "image=int8,text=int8,audio=fp16,fusion_head=fp32"


def test_parse_names_maps_and_entries() -> None:
    assert [p.to_json() for p in parse_list("fp32,fp16,int8")] == ["fp32", "fp16", "int8"]
    assert [p.to_json() for p in parse_list(MIXED)] == [{"image": "int8", "text": "int8", "audio": "fp16",
                                                        "fusion_head": "fp32"}]
    assert parse_list(f"fp32; {MIXED}") == [Precision("fp32"), parse_list(MIXED)[0]]
    assert parse_list(MIXED)[0].label == MIXED
    assert Precision.parse({"image": "int8"}) == Precision.parse("image=int8")
    for bad in ("", "image=", "image=int8,fp16", "fp64", "image=fp8"):
        with pytest.raises(InputError):
            parse_list(bad)


@pytest.mark.parametrize(("backend", "expected"), [("onnxruntime", "int8"), ("tensorrt", "int8-trt"),
                                                   ("onnxruntime-trt", "int8-trt"), ("onnxruntime-cuda", "int8")])
def test_int8_means_each_backends_flavour(backend: str, expected: str) -> None:
    assert artifact_key("int8", backend) == expected
    assert artifact_key("fp16", backend) == "fp16" and artifact_key("int8-trt", backend) == "int8-trt"


def test_every_backend_declares_an_int8_flavour_and_unknown_backends_fail() -> None:
    assert {artifact_key("int8", b) for b in available_backends()} <= {"int8", "int8-trt"}
    with pytest.raises(BackendError, match="unknown backend 'tensorflow'"):
        artifact_key("int8", "tensorflow")


def test_resolve_against_a_bundle(quantized_bundle_pristine: Path) -> None:
    bundle = Bundle.load(quantized_bundle_pristine)
    # unlisted components stay fp32 (not fp16, not the listed value)
    assert Precision.parse("image=fp16").resolve(bundle) == {"text": "fp32", "image": "fp16", "audio": "fp32",
                                                             "fusion_head": "fp32"}
    assert set(Precision.parse("int8").resolve(bundle, "tensorrt").values()) == {"int8-trt"}
    assert set(Precision.parse("int8").resolve(bundle, "onnxruntime").values()) == {"int8"}
    with pytest.raises(InputError, match=r"unknown component\(s\) \['video'\]"):
        Precision.parse("video=int8").resolve(bundle)


def test_missing_artifact_names_the_quantize_command(tiny_bundle: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    with pytest.raises(BundleError, match="--precision int8 --target tensorrt"):
        Precision.parse("int8").resolve(bundle, "tensorrt")
    with pytest.raises(BundleError, match=r"mmedge quantize \S+ --precision fp16$"):
        Precision.parse("fp16").resolve(bundle)


def test_auto_reads_the_stored_choice(tiny_bundle: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    with pytest.raises(InputError, match="--auto"):
        Precision.parse("auto").resolve(bundle)
    bundle.provenance["auto_precision"] = {"choice": {"image": "fp32", "text": "fp32"}}
    assert Precision.parse("auto").explicit(bundle).label == "text=fp32,image=fp32,audio=fp32,fusion_head=fp32"
