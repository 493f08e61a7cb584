"""The checks that make a bundle a trust boundary: safe reading of bundle.json, its JSON Schema,
path confinement, and the consistency of labels, specs and graphs (torch-free, no onnxruntime)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mmedge.errors import BundleError
from mmedge.schema_check import Checker
from mmedge.specs import COMPONENTS, HEAD, MODALITIES, Preprocessing, TensorSpec, embedding_name

MAX_MANIFEST_BYTES = 8 << 20  # a real bundle.json is a few KiB; refuse anything this large before parsing it
MAX_DEPTH = 32  # nesting of objects/arrays (a real bundle.json nests about 8 deep)
SCHEMA_FILE = Path(__file__).with_name("bundle_schema.json")
GraphIO = Sequence[tuple[str, str, Sequence[int | str | None]]]  # (name, dtype, dims) of a graph's inputs/outputs


# ---- reading bundle.json -------------------------------------------------------------------------
def read_manifest(manifest: Path) -> Any:
    """Parse bundle.json: size-limited, strict UTF-8, no duplicate keys, bounded nesting; BundleError otherwise."""
    try:
        size = manifest.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{manifest} is {size} bytes, over the {MAX_MANIFEST_BYTES >> 20} MiB limit of a "
                              "bundle.json; it is not a bundle manifest (re-export the bundle)")
        raw = manifest.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{manifest} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "bundle.json must be UTF-8: re-export the bundle") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BundleError(f"{manifest} is nested too deeply (limit {MAX_DEPTH} levels); re-export the bundle") from None
    deepest = _depth(data)
    if deepest > MAX_DEPTH:
        raise BundleError(f"{manifest} is nested {deepest}+ levels deep (limit {MAX_DEPTH}); re-export the bundle")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BundleError(f"bundle.json has the key {key!r} twice in one object (ambiguous); re-export the bundle")
        out[key] = value
    return out


def _depth(data: Any) -> int:
    """Nesting depth, counted without recursion and stopping just past MAX_DEPTH."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


# ---- the JSON Schema -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=1)
def _fast_checker() -> Checker:
    return Checker(_schema())


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_schema())


def key_path(parts: Sequence[str | int]) -> str:
    """`components.text.inputs[0].shape` from a sequence of keys and indexes."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def validate_schema(data: Any, manifest: Path) -> None:
    """Check bundle.json against bundle_schema.json; one-line BundleError naming the key path."""
    if _fast_checker().is_valid(data):  # the common case, without jsonschema's ~85 ms import
        return
    import jsonschema

    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    while error.context:  # oneOf/anyOf: the most specific reason
        error = jsonschema.exceptions.best_match(error.context)
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        parts += [k for k in error.validator_value if k not in error.instance][:1]
    where = key_path(parts)
    raise BundleError(f"{manifest} is malformed: {where}: {_describe(error)}; re-export the bundle")


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "…"


_TYPES = {"integer": "int", "number": "float", "string": "str", "object": "dict", "array": "list", "boolean": "bool"}


def _describe(error: Any) -> str:
    kind, arg, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        want = " or ".join(_TYPES.get(t, t) for t in ([arg] if isinstance(arg, str) else arg))
        return f"expected {want}, got {type(value).__name__} {_shown(value)}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"must be {op} {arg}, got {_shown(value)}"
    if kind in ("enum", "const"):
        return f"expected one of {arg if kind == 'enum' else [arg]}, got {_shown(value)}"
    if kind == "required":
        return "required key is missing"
    if kind == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        return f"unknown key(s) {sorted(k for k in value if k not in known)}; known: {sorted(known)}"
    if kind in ("minItems", "maxItems", "minProperties", "maxProperties"):
        return f"{kind} is {arg}, got {len(value)} entries"
    if kind in ("minLength", "maxLength"):
        return f"{kind} is {arg}, got a string of {len(value)} characters"
    if kind == "uniqueItems":
        return f"entries must be unique, got {_shown(value)}"
    if kind == "pattern":
        return f"{_shown(value)} does not match {arg}"
    return " ".join(str(error.message).split())[:200]


# ---- confinement ---------------------------------------------------------------------------------
def confine(root: Path, relative: Any, key: str) -> Path:
    """`root / relative` when it is a relative path that stays inside `root` (symlinks resolved), else BundleError."""
    where = f"{root / 'bundle.json'}: {key} = {_shown(relative, 300)}"
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise BundleError(f"{where} is not a usable file name; re-export the bundle")
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).anchor:
        raise BundleError(f"{where} is an absolute path; bundle paths must be relative to the bundle folder")
    if ".." in PurePosixPath(relative.replace("\\", "/")).parts:
        raise BundleError(f"{where} contains '..'; bundle paths must stay inside the bundle folder")
    full = root / relative
    base = root.resolve()
    real = Path(os.path.realpath(full))
    if real != base and base not in real.parents:
        raise BundleError(f"{where} resolves to {real}, outside the bundle folder {base} (a symlink leaves it); "
                          "copy the file into the bundle")
    return full


def manifest_paths(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every file named in a (schema-valid) bundle.json document."""
    for name, comp in data.get("components", {}).items():
        for precision, art in comp.get("artifacts", {}).items():
            yield f"components.{name}.artifacts.{precision}.file", art.get("file")
    text = data.get("preprocessing", {}).get("text")
    if text is not None:
        yield "preprocessing.text.tokenizer", text.get("tokenizer")
    for rel in data.get("files") or {}:
        yield f"files.{rel}", rel
    for name, by_precision in data.get("engines", {}).items():
        for precision, records in by_precision.items():
            for key, record in records.items():
                for field in ("plan", "sidecar", "builder_log"):
                    if record.get(field) is not None:
                        yield f"engines.{name}.{precision}.{key}.{field}", record[field]


# ---- consistency ---------------------------------------------------------------------------------
def _spec(specs: list[TensorSpec], name: str) -> tuple[int, TensorSpec] | None:
    return next(((i, s) for i, s in enumerate(specs) if s.name == name), None)


def _dim(spec: TensorSpec, axis: int) -> int | None:
    return spec.shape[axis] if len(spec.shape) > axis and isinstance(spec.shape[axis], int) else None  # type: ignore


def consistency_problem(labels: list[str], modalities: list[str], components: dict[str, Any],
                        pre: Preprocessing) -> str | None:
    """The first disagreement between labels, modalities, component specs and preprocessing (None if none)."""
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        return f"unknown components {unknown}"
    if HEAD not in components:
        return f"the '{HEAD}' component is missing"
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        return f"labels: duplicate label(s) {dupes}; every class needs its own name"
    head = components[HEAD]
    for m in modalities:
        if m not in MODALITIES or m not in components:
            return f"modality '{m}' has no encoder component"
        emb = embedding_name(m)
        out, inp = _spec(components[m].outputs, emb), _spec(head.inputs, emb)
        if out is None:
            return f"components.{m}.outputs: no '{emb}' output"
        if inp is None:
            return f"components.{HEAD}.inputs: no '{emb}' input for modality '{m}'"
        d_out, d_in = _dim(out[1], 1), _dim(inp[1], 1)
        if d_out is not None and d_in is not None and d_out != d_in:
            return (f"components.{m}.outputs[{out[0]}].shape[1] is {d_out} but components.{HEAD}.inputs[{inp[0]}]"
                    f".shape[1] is {d_in}: the encoder's embedding width must equal the head's input")
    present = _spec(head.inputs, "present")
    if present is None or _dim(present[1], 1) != len(modalities):
        got = "missing" if present is None else f"shape {list(present[1].shape)}"
        return (f"components.{HEAD}.inputs 'present' must be [batch, {len(modalities)}] (one column per modality "
                f"{modalities}), got {got}")
    logits = _spec(head.outputs, "logits")
    if logits is None or len(logits[1].shape) != 2:
        return f"components.{HEAD}.outputs: no 'logits' output of rank 2"
    width = _dim(logits[1], 1)
    if width is not None and width != len(labels):
        return (f"labels has {len(labels)} entries but components.{HEAD}.outputs[{logits[0]}].shape[1] (logits) "
                f"is {width}; labels and the head must agree")
    return _preprocessing_problem(components, pre)


def _preprocessing_problem(components: dict[str, Any], pre: Preprocessing) -> str | None:
    image = pre.image
    if image is not None:
        for key in ("mean", "std"):
            if len(getattr(image, key)) != image.channels:
                return f"preprocessing.image.{key} has {len(getattr(image, key))} values for {image.channels} channels"
        if "image" in components:
            pix = _spec(components["image"].inputs, "pixel_values")
            want = (image.channels, image.size, image.size)
            if pix is not None and any(_dim(pix[1], i + 1) not in (None, w) for i, w in enumerate(want)):
                return (f"components.image.inputs[{pix[0]}].shape is {list(pix[1].shape)} but preprocessing.image "
                        f"makes [batch, {', '.join(map(str, want))}]")
    audio = pre.audio
    if audio is not None and "audio" in components:
        wave = _spec(components["audio"].inputs, "waveform")
        if wave is not None and _dim(wave[1], 1) not in (None, audio.samples):
            return (f"components.audio.inputs[{wave[0]}].shape[1] is {_dim(wave[1], 1)} but preprocessing.audio "
                    f"makes {audio.samples} samples ({audio.sample_rate} Hz × {audio.clip_seconds} s)")
    return None


def io_problems(component: str, graph: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                graph_inputs: GraphIO, graph_outputs: GraphIO) -> list[str]:
    """Where a graph's real inputs/outputs differ from bundle.json's specs (names, dtypes, ranks, static dims)."""
    problems = []
    for side, specs, real in (("input", inputs, graph_inputs), ("output", outputs, graph_outputs)):
        actual = {name: (dtype, list(dims)) for name, dtype, dims in real}
        for spec in specs:
            got = actual.pop(spec.name, None)
            expected = f"{spec.dtype} {list(spec.shape)}"
            if got is None:
                problems.append(f"{component}: {side} '{spec.name}' ({expected}) is not in the graph {graph}")
                continue
            dtype, dims = got
            pairs = zip(spec.shape, dims, strict=False)
            static = all(isinstance(a, str) or not isinstance(b, int) or a == b for a, b in pairs)
            if dtype != spec.dtype or len(dims) != len(spec.shape) or not static:
                problems.append(f"{component}: {side} '{spec.name}' expected {expected} (bundle.json), the graph "
                                f"{graph} has {dtype} {dims}")
        problems.extend(f"{component}: the graph {graph} has an {side} '{name}' ({dtype} {dims}) that bundle.json "
                        "does not list" for name, (dtype, dims) in actual.items())
    return problems


def raise_io_problems(problems: list[str]) -> None:
    """One BundleError listing every I/O mismatch (nothing when the list is empty)."""
    if problems:
        raise BundleError("graph does not match bundle.json: " + "; ".join(problems)
                          + " (the file was swapped or bundle.json edited; re-export the bundle)")
