"""Users' datasets: JSONL/CSV manifests of (text, image path, audio path, label) rows.

Each row: `label` (a class name; an int is accepted only when it indexes the `labels` passed in) and
any of `text`, `image`, `audio` (absent, null or empty = the modality is missing). Optional `id` and
`split` fields. Relative paths resolve against the manifest's folder; files are checked to exist here
and decoded later by preprocessing. Every problem is one ManifestError naming file:line.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmedge.data.sample import Dataset, Sample
from mmedge.errors import InputError, ManifestError

log = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = ("text", "image", "audio", "label", "id", "split")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)

Row = tuple[int, dict[str, Any]]  # (1-based line number, raw fields)


def _read_text(path: Path) -> str:
    """The manifest's text, or a ManifestError that says why it cannot be read."""
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    if not path.is_file():
        raise ManifestError(f"manifest is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        utf16 = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ManifestError(f"{path}:{line}: not UTF-8 text{utf16}: byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start} ({exc.reason}); re-save the file as UTF-8") from exc


def _jsonl_rows(path: Path, text: str) -> Iterator[Row]:
    """Rows of a JSONL manifest (blank lines skipped); only a newline ends a row (JSON strings may hold U+2028)."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise ManifestError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        yield lineno, obj


def _csv_rows(path: Path, text: str) -> Iterator[Row]:
    """Rows of a CSV manifest with a header row."""
    reader = csv.DictReader(io.StringIO(text, newline=""))  # not splitlines(): a cell may hold U+2028, form feed…
    try:
        header = reader.fieldnames
        if header is not None and "label" not in header:
            raise ManifestError(f"{path}:1: CSV header has no 'label' column (header: {', '.join(header)})")
        for row in reader:
            if None in row:
                raise ManifestError(f"{path}:{reader.line_num}: more values than header columns")
            yield reader.line_num, {k: v for k, v in row.items() if v is not None}
    except csv.Error as exc:
        raise ManifestError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc


def _rows(path: Path) -> list[Row]:
    """All raw rows of a manifest, by file type."""
    suffix = path.suffix.lower()
    if suffix not in JSONL_SUFFIXES + CSV_SUFFIXES:
        raise ManifestError(f"unsupported manifest type '{path.suffix}' for {path}: expected .jsonl or .csv")
    text = _read_text(path)
    rows = list(_jsonl_rows(path, text) if suffix in JSONL_SUFFIXES else _csv_rows(path, text))
    if not rows:
        raise ManifestError(f"manifest is empty: {path} (expected one row per sample with at least a label)")
    return rows


def _warn_unknown_fields(path: Path, rows: list[Row]) -> None:
    """Log one warning per field name mmedge does not use."""
    seen: dict[str, int] = {}
    for lineno, row in rows:
        for key in row:
            if key not in FIELDS and key not in seen:
                seen[key] = lineno
    for key, lineno in seen.items():
        log.warning("%s:%d: ignoring unknown field '%s' (known: %s)", path, lineno, key, ", ".join(FIELDS))


def _value(path: Path, lineno: int, row: dict[str, Any], key: str) -> str | None:
    """A string field; None when absent, null or blank."""
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{path}:{lineno}: field '{key}' must be a string, got {type(value).__name__}")
    return value if value.strip() else None


def _media_path(path: Path, lineno: int, key: str, value: str | None) -> str | None:
    """Resolve a media path against the manifest's folder and check that the file exists."""
    if value is None:
        return None
    try:
        resolved = Path(value).expanduser()
        if not resolved.is_absolute():
            resolved = path.parent / resolved
        resolved = resolved.resolve()
        found = resolved.is_file()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, a symlink loop…
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ManifestError(f"{path}:{lineno}: {key} path {value[:80]!r} cannot be used ({reason})") from None
    if not found:
        raise ManifestError(f"{path}:{lineno}: {key} file not found: {resolved} (as written: '{value}')")
    return str(resolved)


def _raw_label(path: Path, lineno: int, row: dict[str, Any]) -> str | int:
    """The row's label as written: a class name or (JSONL only) an int."""
    value = row.get("label")
    if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
        raise ManifestError(f"{path}:{lineno}: 'label' must be a class name, got {value!r}")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ManifestError(f"{path}:{lineno}: missing 'label'")
    return value.strip() if isinstance(value, str) else value


def _natural_sorted(names: set[str]) -> list[str]:
    """Sorted class names; numerically when every name is an integer ('2' before '10')."""
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _label_names(path: Path, raw: list[tuple[int, str | int]], labels: list[str] | None) -> list[str]:
    """The class list: the given `labels` (validated) or the sorted unique names in the manifest."""
    if labels is not None:
        if not labels or len(set(labels)) != len(labels):
            raise InputError(f"labels must be a non-empty list of distinct names, got {labels}")
        return list(labels)
    for lineno, value in raw:
        if isinstance(value, int):
            raise ManifestError(
                f"{path}:{lineno}: integer label {value} needs a known label list to index into; "
                "write the class name instead, or pass labels"
            )
    return _natural_sorted({str(v) for _, v in raw})


def _label_index(path: Path, lineno: int, value: str | int, names: list[str]) -> int:
    """Index of `value` in `names`, or a ManifestError naming the known labels."""
    if isinstance(value, int):
        if 0 <= value < len(names):
            return value
        raise ManifestError(f"{path}:{lineno}: label index {value} out of range 0..{len(names) - 1} "
                            f"(labels: {', '.join(names)})")  # fmt: skip
    if value in names:
        return names.index(value)
    raise ManifestError(f"{path}:{lineno}: unknown label '{value}' (known labels: {', '.join(names)})")


def _sample(path: Path, lineno: int, row: dict[str, Any], label: int) -> Sample:
    """One Sample from a validated row (media as resolved path strings)."""
    text = _value(path, lineno, row, "text")
    image = _media_path(path, lineno, "image", _value(path, lineno, row, "image"))
    audio = _media_path(path, lineno, "audio", _value(path, lineno, row, "audio"))
    if text is None and image is None and audio is None:
        raise ManifestError(f"{path}:{lineno}: row has no text, image or audio (at least one is needed)")
    row_id = row.get("id")
    sample_id = str(row_id) if row_id not in (None, "") else f"{path.name}:{lineno}"
    return Sample(label=label, text=text, image=image, audio=audio, id=sample_id)


def _filter_split(path: Path, rows: list[Row], split: str | None) -> list[Row]:
    """Rows of `split`: by the manifest's `split` field, else a fixed 80/10/10 split by row order.

    Without a split field, row i goes to val when i % 10 == 8 and to test when i % 10 == 9, so
    train, val and test never share a row; `split=None` keeps every row (e.g. an eval manifest).
    """
    if split is None:
        return rows
    if not any("split" in row for _, row in rows):
        if len(rows) < 10:
            raise ManifestError(f"{path}: {len(rows)} rows are too few to split into train/val/test; "
                                "add a 'split' field (train/val/test) to each row")
        fold = {"val": 8, "test": 9}
        if split in fold:
            return [r for i, r in enumerate(rows) if i % 10 == fold[split]]
        if split == "train":
            return [r for i, r in enumerate(rows) if i % 10 < 8]
        raise ManifestError(f"{path}: unknown split '{split}' (the manifest has no split field: use train, val "
                            "or test)")
    splits: dict[str, list[Row]] = {}
    for lineno, row in rows:
        value = _value(path, lineno, row, "split")
        if value is None:
            raise ManifestError(f"{path}:{lineno}: the manifest has a 'split' field but this row's is empty")
        splits.setdefault(value.strip(), []).append((lineno, row))
    if split not in splits:
        raise ManifestError(
            f"{path}: no rows with split '{split}' (splits present: {', '.join(sorted(splits))})"
        )
    return splits[split]


def load_manifest(path: str | Path, labels: list[str] | None = None, *, split: str | None = None) -> Dataset:
    """Load a JSONL/CSV manifest; with `split`, keep only that split's rows if it has a split field."""
    path = Path(path).expanduser()
    rows = _rows(path)
    _warn_unknown_fields(path, rows)
    raw = [(lineno, _raw_label(path, lineno, row)) for lineno, row in rows]
    names = _label_names(path, raw, labels)  # from every row, so class indices match across splits
    indices = {lineno: _label_index(path, lineno, value, names) for lineno, value in raw}
    samples = [_sample(path, lineno, row, indices[lineno]) for lineno, row in rows]
    kept = {lineno for lineno, _ in _filter_split(path, rows, split)}
    samples = [s for (lineno, _), s in zip(rows, samples, strict=True) if lineno in kept]
    log.debug("%s: %d samples, %d labels", path, len(samples), len(names))
    return Dataset(name=path.stem, labels=names, samples=samples)


def check_trainable(dataset: Dataset, source: str) -> None:
    """InputError unless the training data has >= 2 classes and some class with >= 2 samples."""
    counts = Counter(s.label for s in dataset.samples)
    names = [dataset.labels[i] if isinstance(i, int) and 0 <= i < len(dataset.labels) else str(i) for i in counts]
    if len(counts) < 2:
        found = f"only class '{names[0]}'" if names else "no samples"
        raise InputError(f"{source}: the training data has {found}; a classifier needs samples of at least 2 "
                         "classes")
    if max(counts.values()) < 2:
        raise InputError(f"{source}: every class has a single training sample ({len(counts)} classes, "
                         f"{len(dataset)} samples); give at least 2 samples per class")
    missing = [n for i, n in enumerate(dataset.labels) if i not in counts]
    if missing:
        log.warning("%s: classes with no training sample (the model cannot learn them): %s", source,
                    ", ".join(missing))


def resolve_dataset(
    spec: str, split: str | None, seed: int = 0, *, labels: list[str] | None = None, limit: int | None = None
) -> Dataset:
    """'digits' -> the built-in dataset's `split`; a path -> that manifest (filtered by its split field)."""
    if spec == "digits":
        from mmedge.data.digits import LABELS, load_digits

        if labels is not None and list(labels) != LABELS:
            raise InputError(f"the digits dataset has labels {LABELS}, but {labels} were expected")
        return load_digits(split or "test", seed=seed, limit=limit)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"dataset '{spec}' is neither the built-in 'digits' nor an existing manifest file")
    dataset = load_manifest(path, labels, split=split)
    if limit is not None:
        if limit < 0:
            raise InputError(f"limit must be >= 0 or None, got {limit}")
        dataset = dataset.subset(list(range(min(limit, len(dataset)))))
    return dataset
