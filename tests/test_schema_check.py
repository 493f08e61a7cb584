"""The import-free schema check gives jsonschema's verdict on real and mutated bundle.json documents."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from json_paths import at, key_paths

from mmedge.bundle_checks import SCHEMA_FILE, validate_schema
from mmedge.errors import BundleError
from mmedge.schema_check import Checker, UnsupportedSchema, json_equal

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
REFERENCE = jsonschema.Draft202012Validator(SCHEMA)
FAST = Checker(SCHEMA)
SHA = "0" * 64
# values a mutation puts in place of another: every JSON type, the edges of the schema's ranges, and
# the cases where Python and JSON Schema disagree (bool vs int, 1.0 as an integer, NaN)
ODD_VALUES: list[Any] = [None, True, False, 0, 1, -1, 1.0, 1.5, 0.0, -0.5, 3, 4, 2, 16384, 16385, 1048577,
                         math.nan, math.inf, "", "x", "x" * 65, "x" * 300, SHA, SHA.upper(), SHA + "\n",
                         "fp32", "int8-trt", "float32", "text", "encoder", "head", [], [1], ["a", "a"],
                         ["text", "text"], {}, {"a": 1}]


def rich_document(bundle: Path) -> dict[str, Any]:
    """A real bundle.json, plus engines and hf entries so every part of the schema is exercised."""
    doc = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    doc["engines"] = {"sm_86": {"trt10": {"text": {"plan": "engines/text.plan", "sidecar": "engines/text.json",
                                                   "builder_log": None, "sha256": SHA}}}}
    if "text" in doc["preprocessing"]:
        doc["preprocessing"]["text"]["hf"] = {"family": "bert", "model_type": "bert", "path": "hf/text"}
    assert REFERENCE.is_valid(doc), list(REFERENCE.iter_errors(doc))[:1]
    return doc


def mutate(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One random edit: replace, delete, duplicate or add at a random place."""
    out = copy.deepcopy(doc)
    path = rng.choice(key_paths(out))
    parent, last, action = at(out, path[:-1]), path[-1], rng.randrange(4)
    if action == 0:
        parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif action == 1:
        del parent[last]
    elif action == 2 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    elif isinstance(parent[last], dict):
        parent[last][rng.choice(["extra", "fp32", "int8x", "FP16", "files"])] = copy.deepcopy(rng.choice(ODD_VALUES))
    else:
        parent[last] = [parent[last]]
    return out


def test_fast_check_agrees_with_jsonschema_on_mutated_real_documents(quantized_bundle_pristine: Path) -> None:
    doc = rich_document(quantized_bundle_pristine)
    rng = random.Random(0)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        candidate = mutate(doc, rng)
        if rng.random() < 0.3:  # two edits at once, so some invalid documents become valid again
            candidate = mutate(candidate, rng)
        expected = REFERENCE.is_valid(candidate)
        assert FAST.is_valid(candidate) == expected, json.dumps(candidate, default=str)[:2000]
        verdicts[expected] += 1
    assert min(verdicts.values()) > 300, verdicts  # both verdicts were really exercised


@pytest.mark.parametrize(("a", "b", "equal"), [
    (1, 1.0, True), (True, 1, False), (False, 0, False), (True, True, True), (None, None, True),
    ("1", 1, False), ([1, True], [1.0, True], True), ({"a": 1}, {"a": True}, False),
    (math.nan, math.nan, True), (math.nan, float("nan"), False)])
def test_json_equal_is_jsonschemas_enum_equality(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert jsonschema.Draft202012Validator({"enum": [b]}).is_valid(a) is equal


def test_an_unsupported_schema_is_refused_not_half_checked() -> None:
    with pytest.raises(UnsupportedSchema, match="patternProperties"):
        Checker({"type": "object", "properties": {"a": {"patternProperties": {"x": {}}}}})
    with pytest.raises(UnsupportedSchema, match="object or a boolean"):
        Checker({"items": [{"type": "string"}]})  # the old array form of items
    with pytest.raises(UnsupportedSchema, match="nested \\$id"):
        Checker({"properties": {"a": {"$id": "other.json", "type": "string"}}})
    with pytest.raises(UnsupportedSchema, match="does not resolve"):
        Checker({"properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_invalid_documents_still_get_jsonschemas_located_message(quantized_bundle_pristine: Path) -> None:
    doc = rich_document(quantized_bundle_pristine)
    doc["preprocessing"]["image"]["size"] = 0
    with pytest.raises(BundleError, match=r"preprocessing\.image\.size: must be >= 1, got 0"):
        validate_schema(doc, quantized_bundle_pristine / "bundle.json")
