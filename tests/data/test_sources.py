"""Data sources: absolute manifest paths, digits' fixed splits, eval on split-less manifests, fallback naming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmedge.data.digits import load_digits, voice_names
from mmedge.data.sources import absolute_data, digits_splits, eval_split, naming_fallback, resolve_splits
from mmedge.errors import InputError, ManifestError


def test_absolute_data(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_data("digits") == "digits"
    assert absolute_data("data/m.jsonl") == str(tmp_path / "data" / "m.jsonl")
    assert absolute_data(str(tmp_path / "x.csv")) == str(tmp_path / "x.csv")


def test_digits_splits_are_the_built_in_ones_with_held_out_voices():
    splits, report = digits_splits(limit=12)
    for name, ds in splits.items():  # unchanged: exactly what load_digits gives
        ref = load_digits(name, limit=12)
        assert [s.id for s in ds.samples] == [s.id for s in ref.samples]
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(ds.samples, ref.samples, strict=True))
    assert not set(voice_names("test")) & set(voice_names("train"))
    assert report.groups == {s: len(voice_names(s)) for s in ("train", "val", "test")}
    assert "test voices are held out" in report.policy
    assert any("12 rows (< 30)" in w for w in report.warnings)


def test_resolve_splits_of_a_missing_manifest(tmp_path: Path):
    with pytest.raises(InputError, match="neither the built-in 'digits' nor an existing manifest"):
        resolve_splits(str(tmp_path / "nope.jsonl"))


def test_resolve_splits_needs_all_three_splits(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"text": "a", "label": "xy"[i % 2], "split": "train"}) + "\n"
                            for i in range(12)))
    with pytest.raises(ManifestError, match="no rows with split 'val', 'test'"):
        resolve_splits(str(path))


def test_eval_split_scores_a_split_less_manifest_whole(tmp_path: Path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"text": "a", "label": "x"}) + "\n")
    split, note = eval_split(str(plain), "test")
    assert split is None and note is not None and "no 'split' field: scoring every row" in note
    with_field = tmp_path / "split.jsonl"
    with_field.write_text(json.dumps({"text": "a", "label": "x", "split": "test"}) + "\n")
    assert eval_split(str(with_field), "test") == ("test", None)
    assert eval_split("digits", "val") == ("val", None)
    assert eval_split(str(plain), None) == (None, None)
    # the manifest the bundle was trained on: its automatic split is the run's own (test rows held out)
    assert eval_split(str(plain), "test", str(plain.resolve())) == ("test", None)
    assert eval_split(str(plain), "test", "/elsewhere/m.jsonl")[0] is None


def test_naming_fallback_only_when_data_was_not_given():
    with pytest.raises(InputError) as info, naming_fallback(None):
        raise InputError("this bundle has no image encoder")
    assert str(info.value).startswith("this bundle has no image encoder (no --data was given, so the built-in "
                                      "'digits' dataset was used")
    with pytest.raises(InputError) as info, naming_fallback("m.jsonl"):
        raise InputError("this bundle has no image encoder")
    assert str(info.value) == "this bundle has no image encoder"
