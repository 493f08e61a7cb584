"""One dataclass ↔ JSON serializer for every manifest and config of mmedge.

`to_json(obj)` turns (nested) dataclasses, lists, tuples, dicts and paths into plain JSON values,
fields in declaration order. `from_json(cls, data)` rebuilds `cls` from them, checking every value
against the field's type hint; an unknown key, a missing key or a wrong type is one error that
names the key path (e.g. `components.text.inputs[0].shape[1]`).

Field metadata (`dataclasses.field(metadata=...)`) tunes a field:
- `SKIP`: not serialized (e.g. a bundle's root folder); `from_json` takes it from `given`;
- `OMIT_NONE`: left out of the JSON when None (optional sections keep the document unchanged);
- `DICT_KEY`: filled from the key of the enclosing dict (e.g. a component's name) and not written.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from mmedge.errors import ConfigError, MmedgeError

T = TypeVar("T")
SKIP = {"json": "skip"}
OMIT_NONE = {"json": "omit_none"}
DICT_KEY = {"json": "dict_key"}
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_HINTS: dict[type, dict[str, Any]] = {}


def _mode(f: dataclasses.Field[Any]) -> str | None:
    return f.metadata.get("json")  # type: ignore[no-any-return]


def to_json(obj: Any) -> Any:
    """Plain JSON value of a dataclass / list / tuple / dict / Path / scalar (recursively)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            mode, value = _mode(f), getattr(obj, f.name)
            if mode in ("skip", "dict_key") or (mode == "omit_none" and value is None):
                continue
            out[f.name] = to_json(value)
        return out
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_json(cls: type[T], data: Any, *, where: str = "", error: type[MmedgeError] = ConfigError,
              given: dict[str, Any] | None = None) -> T:
    """Rebuild a `cls` dataclass from JSON data; `error` (naming the key path) on any mismatch."""
    return _dataclass(cls, data, where, error, given or {}, None)  # type: ignore[no-any-return]


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _fail(error: type[MmedgeError], where: str, expected: Any, value: Any) -> MmedgeError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "…"
    return error(f"{where or 'document'}: expected {_name(expected)}, got {type(value).__name__} {shown}")


def _dataclass(cls: type, data: Any, where: str, error: type[MmedgeError], given: dict[str, Any],
               key: str | None) -> Any:
    if not isinstance(data, dict):
        raise _fail(error, where, dict, data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    readable = {n for n, f in fields.items() if _mode(f) not in ("skip", "dict_key")}
    unknown = sorted(set(data) - readable)
    if unknown:
        raise error(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(readable)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        mode = _mode(f)
        if mode == "dict_key" and key is not None:
            kwargs[name] = key
        elif name in given:
            kwargs[name] = given[name]
        elif name in data:
            kwargs[name] = _value(hints[name], data[name], path, error)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error(f"{path}: required key is missing")
    return cls(**kwargs)


def _value(tp: Any, value: Any, where: str, error: type[MmedgeError]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error names the exact key path
            return _value(options[0], value, where, error)
        for arg in options:
            try:
                return _value(arg, value, where, error)
            except MmedgeError:
                continue
        raise _fail(error, where, tp, value)
    if origin is typing.Literal:
        if value not in args:
            raise error(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where, error, {}, None)  # type: ignore[arg-type]
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(error, where, tp, value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise error(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_value(a, v, f"{where}[{i}]", error) for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [_value(item, v, f"{where}[{i}]", error) for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(error, where, tp, value)
        vtype = args[1] if args else Any
        out = {}
        for k, v in value.items():
            path = f"{where}.{k}"
            if dataclasses.is_dataclass(vtype):
                out[k] = _dataclass(vtype, v, path, error, {}, str(k))  # type: ignore[arg-type]
            else:
                out[k] = _value(vtype, v, path, error)
        return out
    return _scalar(tp, value, where, error)


def _scalar(tp: Any, value: Any, where: str, error: type[MmedgeError]) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads `2e-3` (no dot) as a string
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp in (str, bool) and type(value) is tp:
        return value
    if tp is type(None) and value is None:
        return None
    if isinstance(tp, type) and tp not in (int, float, str, bool, Path) and isinstance(value, tp):
        return value
    raise _fail(error, where, tp, value)
