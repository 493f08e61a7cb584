"""Users' datasets: JSONL/CSV manifests of (text, image path, audio path, label) rows.

Each row: `label` (a class name; an int is accepted only when it indexes the `labels` passed in) and
any of `text`, `image`, `audio` (absent, null or empty = the modality is missing). Optional `id`,
`split` and `group` (speaker, session, device…: automatic splits never put one group in two splits;
see mmedge/data/split.py) fields. Relative paths resolve against the manifest's folder; files are
checked to exist here and decoded later by preprocessing. Every problem is one ManifestError naming file:line.
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

from mmedge.data import split as policies
from mmedge.data.sample import Dataset, Sample
from mmedge.data.split import SPLITS, SplitReport
from mmedge.errors import InputError, ManifestError

log = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = ("text", "image", "audio", "label", "id", "split", "group")
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


def _group(path: Path, lineno: int, row: dict[str, Any]) -> str | None:
    """The row's group (a string or, in JSONL, an int); None when the row has no group field."""
    value = row.get("group")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ManifestError(f"{path}:{lineno}: field 'group' must be a string (speaker, session, device…), "
                            f"got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ManifestError(f"{path}:{lineno}: the manifest has a 'group' field but this row's is empty")
    return text


def _groups(path: Path, rows: list[Row]) -> list[str | None] | None:
    """Every row's group, or None when no row has one; a ManifestError when only some rows do."""
    if not any("group" in row for _, row in rows):
        return None
    groups = [_group(path, lineno, row) for lineno, row in rows]
    for (lineno, _), group in zip(rows, groups, strict=True):
        if group is None:
            raise ManifestError(f"{path}:{lineno}: the manifest has a 'group' field but this row has none")
    return groups


def _split_rows(path: Path, rows: list[Row], seed: int) -> tuple[dict[str, list[Row]], str]:
    """Every split's rows and the policy that made them: the split field, else group-disjoint, else row order."""
    groups = _groups(path, rows)
    if any("split" in row for _, row in rows):
        splits: dict[str, list[Row]] = {}
        names = []
        for lineno, row in rows:
            value = _value(path, lineno, row, "split")
            if value is None:
                raise ManifestError(f"{path}:{lineno}: the manifest has a 'split' field but this row's is empty")
            names.append(value.strip())
            splits.setdefault(names[-1], []).append((lineno, row))
        leaks = policies.leaked_groups(groups, names) if groups is not None else {}
        if leaks:
            shown = ", ".join(f"{g} ({'/'.join(s)})" for g, s in list(leaks.items())[:5])
            log.warning("%s: %d group(s) appear in more than one split, so those splits are not independent: %s",
                        path, len(leaks), shown)
        return splits, policies.POLICY_FIELD
    if len(rows) < 10:
        raise ManifestError(f"{path}: {len(rows)} rows are too few to split into train/val/test; "
                            "add a 'split' field (train/val/test) to each row")
    if groups is not None:
        index = policies.group_split([g or "" for g in groups], seed, str(path))
        policy = policies.policy_groups(seed)
    else:
        index, policy = policies.row_order_split(len(rows)), policies.POLICY_ROW_ORDER
    return {name: [rows[i] for i in idx] for name, idx in index.items()}, policy


def _filter_split(path: Path, rows: list[Row], split: str | None, seed: int = 0) -> list[Row]:
    """Rows of `split` (see _split_rows); `split=None` keeps every row (e.g. an eval manifest)."""
    if split is None:
        return rows
    splits, policy = _split_rows(path, rows, seed)
    if split in splits:
        return splits[split]
    if policy != policies.POLICY_FIELD:
        raise ManifestError(f"{path}: unknown split '{split}' (the manifest has no split field: use train, val "
                            "or test)")
    raise ManifestError(f"{path}: no rows with split '{split}' (splits present: {', '.join(sorted(splits))})")


def _parse(path: Path, labels: list[str] | None) -> tuple[list[Row], list[str], dict[int, Sample]]:
    """Rows, class names (from every row, so indices match across splits) and samples by line number."""
    rows = _rows(path)
    _warn_unknown_fields(path, rows)
    raw = [(lineno, _raw_label(path, lineno, row)) for lineno, row in rows]
    names = _label_names(path, raw, labels)
    indices = {lineno: _label_index(path, lineno, value, names) for lineno, value in raw}
    return rows, names, {lineno: _sample(path, lineno, row, indices[lineno]) for lineno, row in rows}


def load_manifest(path: str | Path, labels: list[str] | None = None, *, split: str | None = None,
                  split_seed: int = 0) -> Dataset:
    """Load a JSONL/CSV manifest; with `split`, keep only that split's rows (see _split_rows)."""
    path = Path(path).expanduser()
    rows, names, samples = _parse(path, labels)
    kept = [samples[lineno] for lineno, _ in _filter_split(path, rows, split, split_seed)]
    log.debug("%s: %d samples, %d labels", path, len(kept), len(names))
    return Dataset(name=path.stem, labels=names, samples=kept)


def has_split_field(path: str | Path) -> bool:
    """Whether any row of the manifest carries a `split` field."""
    return any("split" in row for _, row in _rows(Path(path).expanduser()))


def load_manifest_splits(path: str | Path, *, split_seed: int = 0, limit: int | None = None,
                         labels: list[str] | None = None) -> tuple[dict[str, Dataset], SplitReport]:
    """train/val/test of a manifest (parsed once; `limit` rows each) and the report of how they were made."""
    path = Path(path).expanduser()
    rows, names, samples = _parse(path, labels)
    splits, policy = _split_rows(path, rows, split_seed)
    missing = [s for s in SPLITS if not splits.get(s)]
    if missing:
        raise ManifestError(f"{path}: no rows with split {', '.join(repr(m) for m in missing)} (splits present: "
                            f"{', '.join(sorted(splits))}); training needs train, val and test rows")
    groups = _groups(path, rows)
    by_line = dict(zip((lineno for lineno, _ in rows), groups or [None] * len(rows), strict=True))
    out, counts = {}, {}
    for name in SPLITS:
        chosen = splits[name][:limit] if limit is not None else splits[name]
        out[name] = Dataset(name=path.stem, labels=names, samples=[samples[lineno] for lineno, _ in chosen])
        counts[name] = len({by_line[lineno] for lineno, _ in chosen})
    unused = sorted(set(splits) - set(SPLITS))
    if unused:
        log.warning("%s: rows with split %s are not used for training", path, ", ".join(unused))
    report = SplitReport(str(path), policy, {n: len(d) for n, d in out.items()}, counts if groups else None)
    return out, report.check()


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
    spec: str, split: str | None, seed: int = 0, *, labels: list[str] | None = None, limit: int | None = None,
    split_seed: int = 0,
) -> Dataset:
    """'digits' -> the built-in dataset's `split`; a path -> that manifest's `split` rows (see _split_rows)."""
    if spec == "digits":
        from mmedge.data.digits import LABELS, load_digits

        if labels is not None and list(labels) != LABELS:
            raise InputError(f"the digits dataset has labels {LABELS}, but {labels} were expected")
        return load_digits(split or "test", seed=seed, limit=limit)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"dataset '{spec}' is neither the built-in 'digits' nor an existing manifest file")
    dataset = load_manifest(path, labels, split=split, split_seed=split_seed)
    if limit is not None:
        if limit < 0:
            raise InputError(f"limit must be >= 0 or None, got {limit}")
        dataset = dataset.subset(list(range(min(limit, len(dataset)))))
    return dataset
