"""Tests that kill mutants of mmedge/bundle.py and mmedge/bundle_checks.py left alive by the other suites."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mmedge.bundle_checks import _describe, _shown

LONG = "y" * 300


def _error(schema: dict[str, Any], instance: Any) -> Any:
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(("schema", "instance", "expected"), [
    ({"type": "integer"}, "x", "expected int, got str 'x'"),
    ({"type": ["integer", "string"]}, 1.5, "expected int or str, got float 1.5"),
    ({"type": ["null"]}, 1, "expected null, got int 1"),
    ({"minimum": 3}, 2, "must be >= 3, got 2"),
    ({"maximum": 3}, 5, "must be <= 3, got 5"),
    ({"exclusiveMinimum": 0}, 0, "must be > 0, got 0"),
    ({"exclusiveMaximum": 3}, 3, "must be < 3, got 3"),
    ({"enum": ["a", "b"]}, "c", "expected one of ['a', 'b'], got 'c'"),
    ({"const": 2}, 3, "expected one of [2], got 3"),
    ({"required": ["a"]}, {}, "required key is missing"),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}, "unknown key(s) ['b']; known: ['a']"),
    ({"additionalProperties": False}, {"b": 1}, "unknown key(s) ['b']; known: []"),
    ({"minItems": 2}, [1], "minItems is 2, got 1 entries"),
    ({"maxItems": 1}, [1, 2], "maxItems is 1, got 2 entries"),
    ({"minProperties": 1}, {}, "minProperties is 1, got 0 entries"),
    ({"maxProperties": 1}, {"a": 1, "b": 2}, "maxProperties is 1, got 2 entries"),
    ({"minLength": 2}, "a", "minLength is 2, got a string of 1 characters"),
    ({"maxLength": 1}, "ab", "maxLength is 1, got a string of 2 characters"),
    ({"uniqueItems": True}, [1, 1], "entries must be unique, got [1, 1]"),
    ({"pattern": "^[0-9]+$"}, "abc", "'abc' does not match ^[0-9]+$"),
    ({"multipleOf": 2}, 3, "3 is not a multiple of 2"),
])  # fmt: skip
def test_each_schema_error_kind_has_its_own_message(schema: dict[str, Any], instance: Any, expected: str):
    assert _describe(_error(schema, instance)) == expected


def test_other_messages_are_one_line_and_bounded():
    message = _describe(_error({"not": {"type": "string"}}, "a  b\n" + LONG))
    assert "\n" not in message and "  " not in message and len(message) == 200
    assert message.startswith("'a b\\n" + "y" * 10)  # whitespace runs collapse to one space


def test_long_values_are_shown_shortened():
    assert _shown("abc") == "'abc'"
    shown = _shown(LONG)
    assert len(shown) == 38 and shown.endswith("…") and shown.startswith("'yyy")
    assert _describe(_error({"type": "integer"}, LONG)) == f"expected int, got str {shown}"


# ---- Bundle writers' records (export runs them; the mutation run copies a cached export) -----------------
def test_add_file_records_hash_and_size_and_verify_checks_it(tiny_bundle: Path):
    from mmedge.bundle import Bundle
    from mmedge.errors import BundleError
    from mmedge.io import sha256_file

    bundle = Bundle.load(tiny_bundle)
    before = dict(bundle.files or {})
    (tiny_bundle / "extra.bin").write_bytes(b"side file")
    record = bundle.add_file("extra.bin")
    assert (record.sha256, record.bytes) == (sha256_file(tiny_bundle / "extra.bin"), 9)
    assert bundle.files == {**before, "extra.bin": record}
    bundle.save()
    again = Bundle.load(tiny_bundle)
    assert again.files is not None and again.files["extra.bin"] == record
    again.verify()
    (tiny_bundle / "extra.bin").write_bytes(b"side filE")
    with pytest.raises(BundleError, match=r"bundle file altered: .*extra\.bin"):
        Bundle.load(tiny_bundle).verify()
    (tiny_bundle / "extra.bin").unlink()
    with pytest.raises(BundleError, match=r"bundle file missing: .*extra\.bin \(files\.extra\.bin\)"):
        Bundle.load(tiny_bundle).verify()


def test_add_artifact_keeps_parity_and_settings_and_counts_as_verified(tiny_bundle: Path):
    from mmedge.bundle import Bundle

    bundle = Bundle.load(tiny_bundle)
    shutil.copyfile(tiny_bundle / "image.onnx", tiny_bundle / "image.copy.onnx")
    art = bundle.add_artifact("image", "fp16", "image.copy.onnx", parity={"max_abs_diff": 0.5},
                              settings={"opset": 17})
    assert (art.parity, art.settings, art.bytes) == ({"max_abs_diff": 0.5}, {"opset": 17},
                                                     (tiny_bundle / "image.onnx").stat().st_size)
    assert bundle.artifact_path("image", "fp16") == tiny_bundle / "image.copy.onnx"
    bundle.save()
    saved = Bundle.load(tiny_bundle).artifact("image", "fp16")
    assert (saved.parity, saved.settings) == ({"max_abs_diff": 0.5}, {"opset": 17})


def test_missing_tokenizer_names_its_key(tiny_bundle: Path):
    from mmedge.bundle import Bundle
    from mmedge.errors import BundleError

    (tiny_bundle / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json \(preprocessing\.text\.tokenizer\)"):
        Bundle.load(tiny_bundle).verify_preprocessing()
