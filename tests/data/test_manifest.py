"""JSONL/CSV manifests: parsing, relative paths, labels, splits and every error case (real files)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmedge.data.manifest import check_trainable, load_manifest, resolve_dataset
from mmedge.data.sample import Dataset, Sample
from mmedge.errors import InputError, ManifestError


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A folder with a real PNG and WAV under media/."""
    folder = tmp_path / "media"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "cat.png")
    sf.write(folder / "meow.wav", np.zeros(800, dtype=np.float32), 8000)
    return tmp_path


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_jsonl_with_relative_paths_and_missing_modalities(media: Path):
    path = write_jsonl(media / "data.jsonl", [
        {"text": "a cat", "image": "media/cat.png", "audio": "media/meow.wav", "label": "cat"},
        {"text": "a dog", "label": "dog"},
        {"image": "media/cat.png", "text": "", "audio": None, "label": "cat", "id": "row-3"},
        "",
    ])  # fmt: skip
    ds = load_manifest(path)
    assert ds.labels == ["cat", "dog"] and ds.name == "data" and len(ds) == 3
    first, second, third = ds.samples
    assert first.image == str((media / "media" / "cat.png").resolve())
    assert first.audio == str((media / "media" / "meow.wav").resolve())
    assert (first.label, second.label, third.label) == (0, 1, 0)
    assert second.image is None and second.audio is None and second.present()["text"]
    assert third.text is None and third.audio is None and third.id == "row-3"
    assert first.id == "data.jsonl:1"


def test_relative_paths_resolve_against_the_manifest_not_the_cwd(media: Path, monkeypatch):
    sub = media / "lists"
    sub.mkdir()
    path = write_jsonl(sub / "m.jsonl", [{"image": "../media/cat.png", "label": "cat"}])
    monkeypatch.chdir(media / "media")
    assert load_manifest(path).samples[0].image == str((media / "media" / "cat.png").resolve())


def test_absolute_paths(media: Path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = write_jsonl(elsewhere / "m.jsonl", [{"audio": str(media / "media" / "meow.wav"), "label": "x"}])
    assert load_manifest(path).samples[0].audio == str((media / "media" / "meow.wav").resolve())


def test_csv_with_empty_cells_and_bom(media: Path):
    path = write_csv(media / "data.csv", ["text", "image", "audio", "label"], [
        ["hello", "media/cat.png", "", "cat"],
        ["", "", "media/meow.wav", "dog"],
    ])  # fmt: skip
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ds = load_manifest(path)
    assert ds.labels == ["cat", "dog"]
    assert ds.samples[0].audio is None and ds.samples[0].text == "hello"
    assert ds.samples[1].text is None and ds.samples[1].image is None and ds.samples[1].label == 1


def test_given_labels_fix_the_order_and_accept_int_indices(media: Path):
    path = write_jsonl(media / "m.jsonl", [{"text": "x", "label": "dog"}, {"text": "y", "label": 0}])
    ds = load_manifest(path, labels=["cat", "dog", "bird"])
    assert ds.labels == ["cat", "dog", "bird"]
    assert [s.label for s in ds.samples] == [1, 0]


def test_numeric_class_names_sort_naturally(media: Path):
    path = write_csv(media / "m.csv", ["text", "label"], [["a", "10"], ["b", "2"], ["c", "1"]])
    assert load_manifest(path).labels == ["1", "2", "10"]


def test_unknown_label_names_file_line_and_known_labels(media: Path):
    path = write_jsonl(media / "m.jsonl", [{"text": "x", "label": "cat"}, {"text": "y", "label": "cow"}])
    message = error_of(path, labels=["cat", "dog"])
    assert f"{path}:2" in message and "'cow'" in message and "cat, dog" in message


def test_int_label_without_labels_or_out_of_range(media: Path):
    path = write_jsonl(media / "m.jsonl", [{"text": "x", "label": 1}])
    assert f"{path}:1" in error_of(path)
    assert "out of range" in error_of(path, labels=["a"])
    bool_path = write_jsonl(media / "b.jsonl", [{"text": "x", "label": True}])
    assert f"{bool_path}:1" in error_of(bool_path, labels=["a", "b"])


def test_bad_labels_argument(media: Path):
    path = write_jsonl(media / "m.jsonl", [{"text": "x", "label": "a"}])
    for labels in ([], ["a", "a"]):
        with pytest.raises(InputError, match="distinct"):
            load_manifest(path, labels=labels)


def test_missing_and_non_file_manifest(tmp_path: Path):
    assert "manifest not found" in error_of(tmp_path / "nope.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    assert "not a file" in error_of(tmp_path / "dir.jsonl")


def test_unsupported_suffix(tmp_path: Path):
    path = tmp_path / "m.txt"
    path.write_text('{"label": "a", "text": "x"}\n')
    assert "expected .jsonl or .csv" in error_of(path)


def test_unreadable_manifest(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"label": "a", "text": "\xff\xfe"}\n')
    assert "not UTF-8" in error_of(path)


@pytest.mark.parametrize(("name", "content"), [
    ("empty.jsonl", ""), ("blank.jsonl", "\n  \n"), ("empty.csv", ""), ("header.csv", "text,label\n"),
])  # fmt: skip
def test_empty_manifest(tmp_path: Path, name: str, content: str):
    path = tmp_path / name
    path.write_text(content)
    assert "manifest is empty" in error_of(path)


def test_malformed_json_line_names_the_line(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "x", "label": "a"}, '{"text": "y", "label": }'])
    message = error_of(path)
    assert f"{path}:2" in message and "malformed JSON" in message


def test_non_object_json_line(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", ['["text", "a"]'])
    assert f"{path}:1" in error_of(path) and "JSON object" in error_of(path)


@pytest.mark.parametrize("row", [{"text": "x"}, {"text": "x", "label": ""}, {"text": "x", "label": None}])
def test_missing_label(tmp_path: Path, row: dict):
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "ok", "label": "a"}, row])
    message = error_of(path)
    assert f"{path}:2" in message and "missing 'label'" in message


def test_non_string_label_or_field(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "x", "label": ["a"]}])
    assert f"{path}:1" in error_of(path)
    path = write_jsonl(tmp_path / "n.jsonl", [{"text": 5, "label": "a"}])
    assert "field 'text' must be a string" in error_of(path)


def test_row_without_any_modality(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "x", "label": "a"}, {"text": " ", "label": "a"}])
    message = error_of(path)
    assert f"{path}:2" in message and "no text, image or audio" in message


@pytest.mark.parametrize("key", ["image", "audio"])
def test_referenced_file_missing(media: Path, key: str):
    path = write_jsonl(media / "m.jsonl", [{"text": "x", "label": "a", key: "media/missing.bin"}])
    message = error_of(path)
    assert f"{path}:1" in message and f"{key} file not found" in message and "missing.bin" in message


def test_csv_without_label_column(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["text", "image"], [["x", ""]])
    assert f"{path}:1" in error_of(path) and "no 'label' column" in error_of(path)


def test_csv_row_with_too_many_values(tmp_path: Path):
    path = tmp_path / "m.csv"
    path.write_text("text,label\nx,a\ny,b,extra\n")
    assert f"{path}:3" in error_of(path)


def test_csv_error_names_the_line(media: Path):
    path = write_csv(
        media / "m.csv", ["text", "image", "label"], [["x", "", "a"], ["y", "media/gone.png", "a"]]
    )
    assert f"{path}:3" in error_of(path)


def test_unknown_fields_warn_once_but_load(tmp_path: Path, caplog):
    path = write_jsonl(tmp_path / "m.jsonl", [
        {"text": "x", "label": "a", "caption": "?"}, {"text": "y", "label": "a", "caption": "!"},
    ])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="mmedge.data.manifest"):
        ds = load_manifest(path)
    assert len(ds) == 2
    warnings = [r.getMessage() for r in caplog.records if "caption" in r.getMessage()]
    assert len(warnings) == 1 and f"{path}:1" in warnings[0]


def split_manifest(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "m.jsonl", [
        {"text": "a", "label": "cat", "split": "train"},
        {"text": "b", "label": "dog", "split": "train"},
        {"text": "c", "label": "dog", "split": "val"},
        {"text": "d", "label": "bird", "split": "test"},
    ])  # fmt: skip


def test_resolve_manifest_filters_by_split_column(tmp_path: Path):
    path = split_manifest(tmp_path)
    val = resolve_dataset(str(path), "val", seed=0)
    train = resolve_dataset(str(path), "train", seed=0)
    assert [s.text for s in val.samples] == ["c"] and [s.text for s in train.samples] == ["a", "b"]
    assert val.labels == train.labels == ["bird", "cat", "dog"]  # classes from every row
    assert len(load_manifest(path)) == 4


def test_resolve_manifest_unknown_split(tmp_path: Path):
    path = split_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"no rows with split 'dev'.*test, train, val"):
        resolve_dataset(str(path), "dev", seed=0)


def test_split_column_with_empty_value(tmp_path: Path):
    path = write_csv(tmp_path / "m.csv", ["text", "label", "split"], [["a", "x", "train"], ["b", "x", ""]])
    with pytest.raises(ManifestError, match=rf"{path}:3"):
        resolve_dataset(str(path), "train", seed=0)


def test_manifest_without_split_column_gets_disjoint_80_10_10_split(tmp_path: Path):
    rows = [{"text": f"t{i}", "label": "xy"[i % 2], "id": str(i)} for i in range(30)]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    ids = {s: {x.id for x in resolve_dataset(str(path), s, seed=0).samples} for s in ("train", "val", "test")}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [24, 3, 3]
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert len(resolve_dataset(str(path), None, seed=0)) == 30
    assert len(resolve_dataset(str(path), "test", seed=0, limit=1)) == 1


def test_manifest_without_split_column_too_small_to_split(tmp_path: Path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(ManifestError, match="too few to split"):
        resolve_dataset(str(path), "train", seed=0)
    assert len(resolve_dataset(str(path), None, seed=0)) == 2


def test_resolve_digits():
    ds = resolve_dataset("digits", "val", seed=0, limit=3)
    assert len(ds) == 3 and ds.labels[0] == "zero"
    with pytest.raises(InputError, match="digits dataset has labels"):
        resolve_dataset("digits", "val", seed=0, labels=["a", "b"])


def test_resolve_unknown_spec(tmp_path: Path):
    with pytest.raises(InputError, match="neither the built-in 'digits' nor an existing manifest"):
        resolve_dataset(str(tmp_path / "nope.jsonl"), "train", seed=0)


# ---- text encodings, blank and non-string text, data a classifier cannot learn from -------------------
def test_latin1_csv_names_the_file_and_line(tmp_path: Path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nok,a\ncafé crème,b\n".encode("latin-1"))
    message = error_of(path)
    assert f"{path}:3: not UTF-8 text" in message and "0xe9" in message and "re-save the file as UTF-8" in message


def test_utf16_manifest_is_named_as_such(tmp_path: Path):
    path = tmp_path / "m.csv"
    path.write_bytes("text,label\nx,a\n".encode("utf-16"))
    assert f"{path}:1: not UTF-8 text (it looks like UTF-16)" in error_of(path)


def _dataset(labels: list[str], counts: list[int]) -> Dataset:
    samples = [Sample(label=i, text=f"t{i}") for i, n in enumerate(counts) for _ in range(n)]
    return Dataset("d", labels, samples)


@pytest.mark.parametrize(("labels", "counts", "words"), [
    (["cat"], [12], "the training data has only class 'cat'; a classifier needs samples of at least 2 classes"),
    (["cat", "dog"], [12, 0], "only class 'cat'"),
    (["a", "b", "c"], [1, 1, 1], "every class has a single training sample (3 classes, 3 samples)"),
    (["a", "b"], [0, 0], "no samples"),
])  # fmt: skip
def test_untrainable_data_is_refused(labels: list[str], counts: list[int], words: str):
    with pytest.raises(InputError) as info:
        check_trainable(_dataset(labels, counts), "m.jsonl")
    assert type(info.value) is InputError and words in str(info.value) and "\n" not in str(info.value)


def test_trainable_data_passes_and_warns_about_unseen_classes(caplog):
    check_trainable(_dataset(["a", "b"], [2, 1]), "m.jsonl")
    with caplog.at_level(logging.WARNING):
        check_trainable(_dataset(["a", "b", "c"], [2, 1, 0]), "m.jsonl")
    assert "classes with no training sample" in caplog.text and "c" in caplog.text


def test_training_refuses_a_one_class_manifest_before_training(tmp_path: Path, monkeypatch):
    from mmedge.models.presets import preset_config
    from mmedge.train import run

    path = write_jsonl(tmp_path / "one.jsonl", [{"text": f"row {i}", "label": "only"} for i in range(20)])
    cfg = preset_config("tiny")
    cfg.data, cfg.model.modalities = str(path), ["text"]
    monkeypatch.setattr(run, "prepare_tokenizer", lambda *a: pytest.fail("training started"))
    with pytest.raises(InputError, match="only class 'only'"):
        run.train_run(cfg, tmp_path / "run")
