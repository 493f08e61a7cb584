"""The real CLI (typer's CliRunner): train → export → predict → eval, and one-line errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_one_line_error, invoke
from PIL import Image

from mmedge.data.digits import load_digits


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real PNG, WAV, an empty WAV, a non-image and a non-audio file."""
    root = tmp_path_factory.mktemp("files")
    s = load_digits("test", limit=1).samples[0]
    Image.fromarray(s.image).save(root / "digit.png")
    sf.write(root / "digit.wav", s.audio, 8000)
    sf.write(root / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    (root / "notes.txt").write_text("not an image, not audio")
    return {"png": root / "digit.png", "wav": root / "digit.wav", "empty": root / "empty.wav",
            "txt": root / "notes.txt"}


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("train", "export", "predict", "eval", "demo"):
        assert cmd in result.output


def test_predict_json(tiny_bundle_pristine: Path, files):
    result = invoke("predict", tiny_bundle_pristine, "--image", files["png"], "--audio", files["wav"],
                    "--text", "an odd number", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["label"] in data["probabilities"] and data["present"] == ["text", "image", "audio"]


def test_predict_table(tiny_bundle_pristine: Path, files):
    result = invoke("predict", tiny_bundle_pristine, "--image", files["png"])
    assert result.exit_code == 0 and "probability" in result.output


def test_eval_json_has_every_subset(tiny_bundle_pristine: Path):
    result = invoke("eval", tiny_bundle_pristine, "--json")
    assert result.exit_code == 0, result.output
    subsets = json.loads(result.output)[0]["subsets"]
    assert len(subsets) == 8 and "text+image+audio" in subsets and "all" in subsets


@pytest.mark.parametrize(("kind", "option", "message"), [
    ("missing", "--image", "image file not found"),
    ("txt", "--image", "not a readable image"),
    ("txt", "--audio", "not a readable audio file"),
    ("empty", "--audio", "audio file is empty"),
    ("missing", "--audio", "audio file not found"),
])
def test_predict_bad_files(tiny_bundle_pristine: Path, files, kind: str, option: str, message: str):
    path = files.get(kind, Path("/nonexistent/file.bin"))
    assert_one_line_error(invoke("predict", tiny_bundle_pristine, option, path), message)


def test_predict_all_absent(tiny_bundle_pristine: Path):
    assert_one_line_error(invoke("predict", tiny_bundle_pristine), "all modalities are absent")


def test_bundle_with_missing_or_altered_file(tiny_bundle: Path, files):
    (tiny_bundle / "text.onnx").write_bytes(b"garbage")
    assert_one_line_error(invoke("predict", tiny_bundle, "--image", files["png"]), "bundle file altered")
    (tiny_bundle / "text.onnx").unlink()
    assert_one_line_error(invoke("predict", tiny_bundle, "--image", files["png"]), "bundle file missing")


def test_missing_bundle(tmp_path: Path):
    assert_one_line_error(invoke("eval", tmp_path / "nope"), "bundle folder not found")


def test_eval_unknown_label(tiny_bundle_pristine: Path, tmp_path: Path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"text": "an even number", "label": "eleven"}) + "\n")
    assert_one_line_error(invoke("eval", tiny_bundle_pristine, "--data", manifest), "eleven")


def test_train_malformed_manifest(tmp_path: Path):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"text": "ok", "label": "a"}\n{not json}\n')
    assert_one_line_error(invoke("train", "--data", manifest, "--out", tmp_path / "run"), "bad.jsonl:2")


def test_train_row_without_modalities(tmp_path: Path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"text": "ok", "label": "a"}\n{"label": "b"}\n')
    assert_one_line_error(invoke("train", "--data", manifest, "--out", tmp_path / "run"), "m.jsonl:2")


def test_export_not_a_run(tmp_path: Path):
    assert_one_line_error(invoke("export", tmp_path, "--out", tmp_path / "b"), "not a finished training run")


def test_train_export_predict_on_a_user_manifest(tmp_path: Path, files):
    """A user's own JSONL with relative paths and missing modalities, end to end through the CLI."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i, s in enumerate(load_digits("train", limit=60).samples):
        Image.fromarray(s.image).save(data / f"{i}.png")
        row = {"image": f"{i}.png", "label": ["zero", "one", "two", "three", "four", "five", "six", "seven",
                                              "eight", "nine"][s.label]}
        if s.text and i % 3:
            row["text"] = s.text
        rows.append(json.dumps(row))
    (data / "train.jsonl").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    result = invoke("train", "--data", data / "train.jsonl", "--modalities", "text,image", "--epochs", "2",
                    "--out", run, "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["test"]) == {"text", "image", "text+image", "all"}
    result = invoke("export", run, "--out", tmp_path / "bundle", "--json")
    assert result.exit_code == 0, result.output
    assert_one_line_error(invoke("predict", tmp_path / "bundle", "--audio", files["wav"]), "no audio encoder")
    shutil.rmtree(run)
    result = invoke("predict", tmp_path / "bundle", "--image", files["png"], "--json")
    assert result.exit_code == 0, result.output


def test_eval_report_with_robustness(tiny_bundle_pristine: Path, tmp_path: Path):
    result = invoke("eval", tiny_bundle_pristine, "--report", tmp_path / "rep", "--robustness")
    assert result.exit_code == 0, result.output
    for name in ("confusion.png", "per_class.json", "subsets.json", "robustness.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0


def test_inspect_json_loads_once(tiny_bundle_pristine: Path):
    """`mmedge inspect --json` lists every component with its fp32 artifact."""
    result = invoke("inspect", str(tiny_bundle_pristine), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert set(info["components"]) == {"text", "image", "audio", "fusion_head"}


def test_workflow_quantize_updates_the_passed_bundle(tiny_bundle: Path):
    """The workflow takes a loaded Bundle, adds artifacts to that object and saves bundle.json."""
    from mmedge.bundle import Bundle
    from mmedge.quantize.run import QuantizeOptions
    from mmedge.workflow import quantize

    bundle = Bundle.load(tiny_bundle)
    outcome = quantize(bundle, QuantizeOptions("fp16", components=["image"]))
    assert [r.component for r in outcome.results] == ["image"] and outcome.chosen is None
    assert "fp16" in bundle.components["image"].artifacts
    assert "fp16" in Bundle.load(tiny_bundle).components["image"].artifacts
    assert outcome.to_json()["artifacts"][0]["precision"] == "fp16"


def test_workflow_ensure_bundle_errors(tmp_path: Path):
    """A missing bundle without build settings, or with an unknown build key, is one InputError."""
    from mmedge.errors import InputError
    from mmedge.workflow import ensure_bundle

    with pytest.raises(InputError, match="gives no 'build' for 'b'"):
        ensure_bundle(tmp_path / "b", None, "b")
    with pytest.raises(InputError, match=r"unknown key\(s\) epoch"):
        ensure_bundle(tmp_path / "b", {"epoch": 1}, "b")


# ---- inputs that are never silently wrong ------------------------------------------------------
def test_predict_blank_text_is_absent(tiny_bundle_pristine: Path, files):
    assert_one_line_error(invoke("predict", tiny_bundle_pristine, "--text", ""), "all modalities are absent")
    result = invoke("predict", tiny_bundle_pristine, "--text", "   ", "--image", files["png"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["present"] == ["image"]


def test_predict_refuses_bombs_and_bad_headers(tiny_bundle_pristine: Path, tmp_path: Path):
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    assert_one_line_error(invoke("predict", tiny_bundle_pristine, "--image", tmp_path / "bomb.png"),
                          "image too large")
    sf.write(tmp_path / "low.wav", np.zeros(300, dtype=np.int16), 8000, subtype="PCM_16")
    raw = bytearray((tmp_path / "low.wav").read_bytes())
    raw[24:28] = (1).to_bytes(4, "little")  # the header now claims a 1 Hz sample rate
    (tmp_path / "low.wav").write_bytes(bytes(raw))
    assert_one_line_error(invoke("predict", tiny_bundle_pristine, "--audio", tmp_path / "low.wav"),
                          "sample rate 1 Hz is outside")


def test_train_refuses_bad_manifests(tmp_path: Path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\nok,a\nna\xefve,b\n".encode("latin-1"))
    assert_one_line_error(invoke("train", "--data", latin, "--out", tmp_path / "run"), "latin.csv:3: not UTF-8")
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({"text": f"row {i}", "label": "only"}) + "\n" for i in range(20)))
    assert_one_line_error(invoke("train", "--data", one, "--modalities", "text", "--out", tmp_path / "run"),
                          "only class 'only'")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
