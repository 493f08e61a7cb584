"""Key paths into JSON documents, for the tests that mutate bundle.json (fuzz, schema checker)."""

from __future__ import annotations

from typing import Any

Key = tuple[str | int, ...]


def key_paths(value: Any, key: Key = ()) -> list[Key]:
    """Every key path in a JSON document (objects and arrays alike), parents before children."""
    out: list[Key] = [key] if key else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += key_paths(v, (*key, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += key_paths(v, (*key, i))
    return out


def at(doc: Any, key: Key) -> Any:
    """The value at `key` in `doc`."""
    for k in key:
        doc = doc[k]
    return doc
