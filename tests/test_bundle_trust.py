"""The bundle is a trust boundary: confined paths, verified files, a validated manifest, consistent graphs."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, invoke

import mmedge.bundle
from mmedge.bundle import MANIFEST, Bundle
from mmedge.errors import BundleError
from mmedge.io import sha256_file
from mmedge.runtime.pipeline import Pipeline
from mmedge.specs import HEAD

Edit = Callable[[dict[str, Any]], None]
MIB = 1 << 20


def edit_manifest(root: Path, edit: Edit) -> None:
    """Apply `edit` to bundle.json in place."""
    data = json.loads((root / MANIFEST).read_text())
    edit(data)
    (root / MANIFEST).write_text(json.dumps(data, indent=2))


def rehash(root: Path, relative: str) -> None:
    """Record the current sha256/size of `relative` wherever bundle.json names it (a consistent forgery)."""
    sha, size = sha256_file(root / relative), (root / relative).stat().st_size

    def edit(data: dict[str, Any]) -> None:
        for comp in data["components"].values():
            for art in comp["artifacts"].values():
                if art["file"] == relative:
                    art.update(sha256=sha, bytes=size)
        if relative in data.get("files", {}):
            data["files"][relative] = {"sha256": sha, "bytes": size}

    edit_manifest(root, edit)


def flip_byte(path: Path, offset: int) -> None:
    """Change one byte in place (same size)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def load_error(root: Path) -> str:
    """The one-line message of the BundleError that Bundle.load raises."""
    with pytest.raises(BundleError) as info:
        Bundle.load(root)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.fixture()
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the bundle module hashes (opens) any file."""
    def refuse(path: object, *args: object) -> str:
        raise AssertionError(f"{path} was opened before the manifest was refused")

    monkeypatch.setattr(mmedge.bundle, "sha256_file", refuse)


# ---- 1. confinement -------------------------------------------------------------------------------
def _set_artifact(data: dict[str, Any], value: str) -> str:
    data["components"]["image"]["artifacts"]["fp32"]["file"] = value
    return "components.image.artifacts.fp32.file"


def _set_tokenizer(data: dict[str, Any], value: str) -> str:
    data["preprocessing"]["text"]["tokenizer"] = value
    return "preprocessing.text.tokenizer"


def _engine(field: str) -> Callable[[dict[str, Any], str], str]:
    def setter(data: dict[str, Any], value: str) -> str:
        record = {"plan": "engines/image.fp16.abc.plan", "sidecar": "engines/image.fp16.abc.json",
                  "sha256": "0" * 64}
        data["engines"] = {"image": {"fp16": {"abc": {**record, field: value}}}}
        return f"engines.image.fp16.abc.{field}"

    return setter


def _set_side_file(data: dict[str, Any], value: str) -> str:
    data["files"][value] = {"sha256": "0" * 64, "bytes": 1}
    return f"files.{value}"


SETTERS = {"artifact": _set_artifact, "tokenizer": _set_tokenizer, "engine plan": _engine("plan"),
           "engine sidecar": _engine("sidecar"), "engine builder_log": _engine("builder_log"),
           "side file": _set_side_file}


def _escape(kind: str, root: Path, outside: Path) -> str:
    if kind == "dotdot":
        return "../outside/evil.bin"
    if kind == "absolute":
        return str(outside / "evil.bin")
    if kind == "symlink file":
        (root / "link.bin").symlink_to(outside / "evil.bin")
        return "link.bin"
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    return "linkdir/evil.bin"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink file", "symlink dir"])
@pytest.mark.parametrize("where", list(SETTERS))
def test_paths_leaving_the_bundle_are_refused_before_opening(tiny_bundle: Path, tmp_path: Path, no_hashing: None,
                                                             kind: str, where: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.bin").write_bytes(b"not yours")
    value = _escape(kind, tiny_bundle, outside)
    key: list[str] = []
    edit_manifest(tiny_bundle, lambda d: key.append(SETTERS[where](d, value)))
    message = load_error(tiny_bundle)
    assert f"{key[0]} = {value!r}" in message, message


def test_symlink_inside_the_bundle_is_fine(tiny_bundle: Path):
    (tiny_bundle / "alias.onnx").symlink_to("image.onnx")
    edit_manifest(tiny_bundle, lambda d: _set_artifact(d, "alias.onnx"))
    bundle = Bundle.load(tiny_bundle)
    assert bundle.artifact_path("image", "fp32") == tiny_bundle / "alias.onnx"


def test_direct_paths_are_confined_too(tiny_bundle: Path):
    bundle = Bundle.load(tiny_bundle)
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(BundleError, match="bundle"):
            bundle.verified_path(bad)
        with pytest.raises(BundleError):
            bundle.path(bad)


def test_torch_folder_symlinked_outside_is_refused(tiny_bundle: Path, tmp_path: Path):
    pytest.importorskip("torch")
    shutil.move(str(tiny_bundle / "torch"), str(tmp_path / "elsewhere"))
    (tiny_bundle / "torch").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(BundleError, match=r"torch/model\.safetensors.*outside the bundle folder"):
        Pipeline.from_bundle(tiny_bundle, backend="torch")


# ---- 2. integrity ---------------------------------------------------------------------------------
def test_every_precision_artifact_is_verified(quantized_bundle: Path):
    bundle = Bundle.load(quantized_bundle)
    pairs = [(c, p) for c, comp in bundle.components.items() for p in comp.artifacts]
    assert {p for _, p in pairs} >= {"fp32", "fp16", "int8", "int8-trt"}
    for c, p in pairs:
        path = quantized_bundle / bundle.artifact(c, p).file
        flip_byte(path, path.stat().st_size // 2)
    fresh = Bundle.load(quantized_bundle)  # presence only: nothing is hashed at load
    for c, p in pairs:
        with pytest.raises(BundleError, match=rf"bundle file altered: .*{bundle.artifact(c, p).file}"):
            fresh.artifact_path(c, p)


def test_tampered_tokenizer_is_refused(tiny_bundle: Path):
    flip_byte(tiny_bundle / "tokenizer.json", 10)
    with pytest.raises(BundleError, match=r"bundle file altered: .*tokenizer\.json"):
        Pipeline.from_bundle(tiny_bundle)
    assert_one_line_error(invoke("predict", tiny_bundle, "--text", "one"), "bundle file altered")


@pytest.mark.parametrize("name", ["model.safetensors", "run.json"])
def test_tampered_torch_reference_is_refused(tiny_bundle: Path, name: str):
    pytest.importorskip("torch")
    flip_byte(tiny_bundle / "torch" / name, (tiny_bundle / "torch" / name).stat().st_size - 3)
    with pytest.raises(BundleError, match=rf"bundle file altered: .*torch/{name}"):
        Pipeline.from_bundle(tiny_bundle, backend="torch")


def test_large_files_are_hashed_in_full(tiny_bundle: Path):
    """A change past the first MiB of a file is caught (tokenizer padded to 2 MiB, and a 3 MiB artifact)."""
    tok = tiny_bundle / "tokenizer.json"
    tok.write_text(tok.read_text() + " " * (2 * MIB))
    rehash(tiny_bundle, "tokenizer.json")
    with Pipeline.from_bundle(tiny_bundle) as pipe:
        assert pipe.predict(text="one").label
    with open(tok, "r+b") as fh:  # still valid JSON: a space becomes a tab past the first MiB
        fh.seek(MIB + MIB // 2)
        fh.write(b"\t")
    with pytest.raises(BundleError, match=r"bundle file altered: .*tokenizer\.json"):
        Pipeline.from_bundle(tiny_bundle)
    bundle = Bundle.load(tiny_bundle)
    (tiny_bundle / "big.onnx").write_bytes(os.urandom(3 * MIB))
    bundle.add_artifact("image", "fp16", "big.onnx")
    bundle.save()
    flip_byte(tiny_bundle / "big.onnx", 2 * MIB + 7)
    with pytest.raises(BundleError, match=r"bundle file altered: .*big\.onnx"):
        Bundle.load(tiny_bundle).artifact_path("image", "fp16")


def test_each_file_is_hashed_once_per_bundle_even_across_threads(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    counts: dict[str, int] = {}
    real = mmedge.bundle.checked_sha256

    def counting(path: str | Path, *args: object) -> str:
        counts[Path(path).name] = counts.get(Path(path).name, 0) + 1
        return real(path, *args)

    monkeypatch.setattr(mmedge.bundle, "checked_sha256", counting)
    bundle = Bundle.load(tiny_bundle)
    assert counts == {}  # lazy: load hashes nothing
    threads = [threading.Thread(target=bundle.artifact_path, args=("image", "fp32")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bundle.artifact_path("image", "fp32")
    assert counts == {"image.onnx": 1}


def test_moved_bundle_still_loads_and_predicts(tiny_bundle: Path, tmp_path: Path):
    with Pipeline.from_bundle(tiny_bundle) as pipe:
        before = pipe.predict(text="one two").probabilities
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(tiny_bundle), str(moved))
    with Pipeline.from_bundle(moved) as pipe:
        assert pipe.predict(text="one two").probabilities == pytest.approx(before)
    result = invoke("predict", moved, "--text", "one two", "--json")
    assert result.exit_code == 0, result.output


# ---- bundle.json itself: schema, size, encoding, nesting --------------------------------------------
SCHEMA_CASES = {
    "components as a list": (lambda d: d.update(components=list(d["components"])), "components: expected dict"),
    "size 0": (lambda d: d["preprocessing"]["image"].update(size=0), "preprocessing.image.size: must be >= 1"),
    "clip_seconds -1": (lambda d: d["preprocessing"]["audio"].update(clip_seconds=-1),
                        "preprocessing.audio.clip_seconds: must be > 0"),
    "sample_rate 0": (lambda d: d["preprocessing"]["audio"].update(sample_rate=0),
                      "preprocessing.audio.sample_rate: must be >= 1"),
    "labels a string": (lambda d: d.update(labels="zero"), "labels: expected list"),
    "bad sha256": (lambda d: d["components"]["text"]["artifacts"]["fp32"].update(sha256="abc"),
                   "components.text.artifacts.fp32.sha256: 'abc' does not match"),
    "zero dim": (lambda d: d["components"]["image"]["inputs"][0].update(shape=["batch", 0, 32, 32]),
                 "components.image.inputs[0].shape[1]: must be >= 1"),
    "unknown precision": (lambda d: d["components"]["text"]["artifacts"].update(
        fp8=d["components"]["text"]["artifacts"]["fp32"]), "components.text.artifacts: 'fp8' does not match"),
    "missing files": (lambda d: d.pop("files"), "files: required key is missing"),
    "unknown key": (lambda d: d.update(extra=1), "document: unknown key(s) ['extra']"),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_schema_errors_name_the_key_path(tiny_bundle: Path, no_hashing: None, case: str):
    edit, expected = SCHEMA_CASES[case]
    edit_manifest(tiny_bundle, edit)
    message = load_error(tiny_bundle)
    assert f"bundle.json is malformed: {expected}" in message, message


@pytest.mark.parametrize(("payload", "expected"), [
    (lambda t: t.replace('"zero"', '"zéro"').encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    (lambda t: t.encode() + b"\xff", "is not UTF-8 text (byte 0xff"),
    (lambda t: t.encode() + b" " * (9 * MIB), "over the 8 MiB limit"),
    (lambda t: t.replace('"metrics": {', '"metrics": {"x": ' + "[" * 40 + "]" * 40 + ",", 1).encode(),
     "nested 33+ levels deep"),
    (lambda t: t.replace('"metrics": {', '"metrics": {"x": ' + "[" * 100000 + "]" * 100000 + ",", 1).encode(),
     "nested too deeply"),
    (lambda t: t.replace('"name":', '"name": "dupe", "name":', 1).encode(), "has the key 'name' twice"),
])
def test_unsafe_manifest_bytes_are_one_line_errors(tiny_bundle: Path, no_hashing: None, payload: Any, expected: str):
    text = (tiny_bundle / MANIFEST).read_text()
    (tiny_bundle / MANIFEST).write_bytes(payload(text))
    assert expected in load_error(tiny_bundle)


# ---- 3. consistency -------------------------------------------------------------------------------
def _labels(n: int) -> Edit:
    return lambda d: d.update(labels=[f"c{i}" for i in range(n)])


def _logits(n: int) -> Edit:
    return lambda d: d["components"][HEAD]["outputs"][0].update(shape=["batch", n])


def _swap_image_graph(root: Path) -> None:
    shutil.copyfile(root / "audio.onnx", root / "image.onnx")
    rehash(root, "image.onnx")


LOAD_CASES: dict[str, tuple[Edit, str]] = {
    "12 labels, 10 logits": (_labels(12), "labels has 12 entries but components.fusion_head.outputs[0].shape[1] "
                                          "(logits) is 10"),
    "10 labels, 5-logit head": (_logits(5), "labels has 10 entries but components.fusion_head.outputs[0].shape[1] "
                                            "(logits) is 5"),
    "duplicate labels": (lambda d: d["labels"].__setitem__(1, "zero"), "labels: duplicate label(s) ['zero']"),
    "encoder D != head D": (lambda d: d["components"]["image"]["outputs"][0].update(shape=["batch", 32]),
                            "components.image.outputs[0].shape[1] is 32 but components.fusion_head.inputs[1]"),
    "present width": (lambda d: d["components"][HEAD]["inputs"][3].update(shape=["batch", 2]),
                      "'present' must be [batch, 3]"),
    "image spec vs preprocessing": (lambda d: d["preprocessing"]["image"].update(size=64),
                                    "components.image.inputs[0].shape is ['batch', 1, 32, 32]"),
    "mean per channel": (lambda d: d["preprocessing"]["image"].update(mean=[0.5, 0.5]),
                         "preprocessing.image.mean has 2 values for 1 channels"),
}
GRAPH_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "12 labels and 12 logits in bundle.json, graph has 10": (
        lambda root: edit_manifest(root, lambda d: (_labels(12)(d), _logits(12)(d))),
        "fusion_head: output 'logits' expected float32 ['batch', 12] (bundle.json), the graph fusion_head.onnx has "
        "float32"),
    "image.onnx swapped for another graph": (
        _swap_image_graph, "image: input 'pixel_values' (float32 ['batch', 1, 32, 32]) is not in the graph image.onnx"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_inconsistent_manifest_is_refused_at_load(tiny_bundle: Path, no_hashing: None, case: str):
    edit, expected = LOAD_CASES[case]
    edit_manifest(tiny_bundle, edit)
    assert expected in load_error(tiny_bundle)


@pytest.mark.parametrize("case", list(LOAD_CASES)[:3])
def test_inconsistent_manifest_through_the_cli(tiny_bundle: Path, case: str):
    edit, expected = LOAD_CASES[case]
    edit_manifest(tiny_bundle, edit)
    with pytest.raises(BundleError, match="re-export"):
        Pipeline.from_bundle(tiny_bundle)
    assert_one_line_error(invoke("predict", tiny_bundle, "--text", "one"), expected)
    assert_one_line_error(invoke("inspect", tiny_bundle), expected)


@pytest.mark.parametrize("case", list(GRAPH_CASES))
def test_graph_that_disagrees_with_manifest(tiny_bundle: Path, case: str):
    change, expected = GRAPH_CASES[case]
    change(tiny_bundle)
    with pytest.raises(BundleError) as info:
        Pipeline.from_bundle(tiny_bundle)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert_one_line_error(invoke("predict", tiny_bundle, "--text", "one"), expected)
    assert_one_line_error(invoke("inspect", tiny_bundle), expected)


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_a_pipeline_without_an_encoders_preprocessing_is_refused(tiny_bundle: Path, modality: str):
    """Found by the fuzzer: without preprocessing.<m> the Pipeline loaded and failed only at the first predict."""
    edit_manifest(tiny_bundle, lambda data: data["preprocessing"].pop(modality))
    with pytest.raises(BundleError, match=f"preprocessing.{modality} is missing"):
        Pipeline.from_bundle(tiny_bundle)
