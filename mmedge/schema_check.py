"""A fast yes/no JSON Schema check for the keywords bundle_schema.json uses (draft 2020-12 semantics).

Why not only jsonschema: importing it (attrs, referencing, rpds) costs ~85 ms, a third of a cold
start on a device that boots into inference, while the answer is almost always "valid". This module
answers valid / invalid without imports; only an invalid document pays for jsonschema, which then
names the key path and the reason. It supports a fixed keyword set and refuses a schema with any
other keyword (so a schema edit cannot silently weaken the check); tests/test_schema_check.py holds
it to jsonschema's verdict on real and mutated bundle.json documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
Schema = dict[str, Any]


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this checker does not implement."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    # JSON Schema: a number with a zero fractional part is an integer (1.0 is, 1.5 is not)
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or float(v).is_integer()),
}


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema's enum/const/uniqueItems see it: true/false are never 1/0."""
    if a is b:  # as jsonschema: the same object (even NaN) is equal to itself
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


class Checker:
    """`is_valid(document)` against one schema, with local `#/$defs/...` references."""

    def __init__(self, schema: Schema) -> None:
        self.root = schema
        self._check_keywords(schema, top=True)

    def is_valid(self, instance: Any) -> bool:
        """True when `instance` satisfies the schema (same verdict as jsonschema's Draft202012Validator)."""
        return self._valid(instance, self.root)

    # ---- the schema itself -------------------------------------------------------------------
    def _check_keywords(self, schema: Any, top: bool = False) -> None:
        """Refuse what this checker would get wrong: unknown keywords, array `items`, a nested `$id`, bad refs."""
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"a schema must be an object or a boolean, got {schema!r}")
        unknown = set(schema) - set(_KEYWORDS) - ANNOTATIONS
        if unknown:
            raise UnsupportedSchema(f"schema keyword(s) {sorted(unknown)} are not supported by mmedge.schema_check")
        if "$id" in schema and not top:
            raise UnsupportedSchema("a nested $id (a new base URI) is not supported by mmedge.schema_check")
        if "$ref" in schema:
            try:
                self._resolve(schema["$ref"])
            except (KeyError, TypeError, AttributeError) as exc:
                raise UnsupportedSchema(f"$ref {schema['$ref']!r} does not resolve") from exc
        for sub in _subschemas(schema):
            self._check_keywords(sub)

    def _resolve(self, ref: str) -> Schema:
        if not ref.startswith("#/"):
            raise UnsupportedSchema(f"only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    # ---- validation --------------------------------------------------------------------------
    def _valid(self, v: Any, schema: Schema | bool) -> bool:
        if isinstance(schema, bool):
            return schema
        return all(_KEYWORDS[k](self, v, arg, schema) for k, arg in schema.items() if k not in ANNOTATIONS)


def _subschemas(schema: Schema) -> list[Any]:
    out: list[Any] = []
    for key in ("items", "additionalProperties", "propertyNames", "if", "then", "else", "not"):
        if key in schema:
            out.append(schema[key])  # anything but an object or a boolean is refused by _check_keywords
    for key in ("properties", "$defs"):
        out.extend(schema.get(key, {}).values())
    for key in ("oneOf", "anyOf", "allOf"):
        out.extend(schema.get(key, []))
    return out


def _object_rule(rule: Callable[[Checker, dict[str, Any], Any, Schema], bool]) -> Callable[..., bool]:
    return lambda c, v, arg, s: not isinstance(v, dict) or rule(c, v, arg, s)


def _array_rule(rule: Callable[[Checker, list[Any], Any, Schema], bool]) -> Callable[..., bool]:
    return lambda c, v, arg, s: not isinstance(v, list) or rule(c, v, arg, s)


def _string_rule(rule: Callable[[str, Any], bool]) -> Callable[..., bool]:
    return lambda c, v, arg, s: not isinstance(v, str) or rule(v, arg)


def _number_rule(rule: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    return lambda c, v, arg, s: not _is_number(v) or rule(v, arg)


def _additional(c: Checker, v: dict[str, Any], arg: Any, s: Schema) -> bool:
    known = s.get("properties", {})
    return all(c._valid(v[k], arg) for k in v if k not in known)


def _if_then_else(c: Checker, v: Any, arg: Any, s: Schema) -> bool:
    branch = s.get("then", True) if c._valid(v, arg) else s.get("else", True)
    return c._valid(v, branch)


def _unique(items: list[Any]) -> bool:
    return not any(json_equal(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items)))


@lru_cache(maxsize=64)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


_KEYWORDS: dict[str, Callable[[Checker, Any, Any, Schema], bool]] = {
    "type": lambda c, v, arg, s: any(_TYPES[t](v) for t in ([arg] if isinstance(arg, str) else arg)),
    "enum": lambda c, v, arg, s: any(json_equal(v, e) for e in arg),
    "const": lambda c, v, arg, s: json_equal(v, arg),
    "$ref": lambda c, v, arg, s: c._valid(v, c._resolve(arg)),
    "allOf": lambda c, v, arg, s: all(c._valid(v, sub) for sub in arg),
    "anyOf": lambda c, v, arg, s: any(c._valid(v, sub) for sub in arg),
    "oneOf": lambda c, v, arg, s: sum(c._valid(v, sub) for sub in arg) == 1,
    "not": lambda c, v, arg, s: not c._valid(v, arg),
    "if": _if_then_else,
    "then": lambda c, v, arg, s: True,  # applied through "if"
    "else": lambda c, v, arg, s: True,
    "properties": _object_rule(lambda c, v, arg, s: all(c._valid(v[k], sub) for k, sub in arg.items() if k in v)),
    "additionalProperties": _object_rule(_additional),
    "required": _object_rule(lambda c, v, arg, s: all(k in v for k in arg)),
    "minProperties": _object_rule(lambda c, v, arg, s: len(v) >= arg),
    "maxProperties": _object_rule(lambda c, v, arg, s: len(v) <= arg),
    "propertyNames": _object_rule(lambda c, v, arg, s: all(c._valid(k, arg) for k in v)),
    "items": _array_rule(lambda c, v, arg, s: all(c._valid(x, arg) for x in v)),
    "minItems": _array_rule(lambda c, v, arg, s: len(v) >= arg),
    "maxItems": _array_rule(lambda c, v, arg, s: len(v) <= arg),
    "uniqueItems": _array_rule(lambda c, v, arg, s: not arg or _unique(v)),
    "minLength": _string_rule(lambda v, arg: len(v) >= arg),
    "maxLength": _string_rule(lambda v, arg: len(v) <= arg),
    "pattern": _string_rule(lambda v, arg: _pattern(arg).search(v) is not None),
    # written as jsonschema does ("fails if below"), so NaN gets the same verdict from both
    "minimum": _number_rule(lambda v, arg: not v < arg),
    "maximum": _number_rule(lambda v, arg: not v > arg),
    "exclusiveMinimum": _number_rule(lambda v, arg: not v <= arg),
    "exclusiveMaximum": _number_rule(lambda v, arg: not v >= arg),
}
