"""Where data comes from: the built-in dataset or a manifest, its train/val/test splits, absolute paths.

Every command that reads a `--data` goes through here, so a manifest path stored in a run is absolute
(export, quantize and eval work from any directory) and an error caused by falling back to the
built-in dataset says that it did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmedge.data.manifest import has_split_field, load_manifest_splits
from mmedge.data.sample import Dataset
from mmedge.data.split import SPLITS, SplitReport
from mmedge.errors import InputError

log = logging.getLogger(__name__)
BUILTIN = "digits"


def absolute_data(spec: str) -> str:
    """'digits' as is; a manifest path made absolute (resolved against the current directory)."""
    if spec == BUILTIN:
        return spec
    return str(Path(spec).expanduser().resolve())


def digits_splits(limit: int | None = None) -> tuple[dict[str, Dataset], SplitReport]:
    """The built-in dataset's fixed splits (unchanged by any seed) and their report (voices as groups)."""
    from mmedge.data.digits import load_digits, voice_names

    out = {s: load_digits(s, seed=0, limit=limit) for s in SPLITS}
    policy = ("built-in digits: fixed stratified 70/15/15 partition of the scans; train and val share "
              "voices (different clips), test voices are held out")
    voices = {s: len(voice_names(s)) for s in SPLITS}
    return out, SplitReport(BUILTIN, policy, {s: len(d) for s, d in out.items()}, voices).check()


def resolve_splits(spec: str, *, limit: int | None = None, split_seed: int = 0
                   ) -> tuple[dict[str, Dataset], SplitReport]:
    """train/val/test of 'digits' or a manifest, with the report of the split policy used."""
    if spec == BUILTIN:
        return digits_splits(limit)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"dataset '{spec}' is neither the built-in 'digits' nor an existing manifest file")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0 or None, got {limit}")
    return load_manifest_splits(path, split_seed=split_seed, limit=limit)


def eval_split(spec: str, split: str | None, trained_on: str | None = None) -> tuple[str | None, str | None]:
    """The split to score and a note (for the caller to show): a manifest without a `split` field is scored whole.

    Its automatic splits exist for training only; scoring "the test tenth" of a file someone hands
    to eval would silently drop 90 % of it, so eval scores every row and says so. The exception is
    `trained_on`, the manifest the bundle was trained on (absolute, as runs store it): there the
    automatic split (with the run's split_seed) is the run's own, and its test rows are the held-out ones.
    """
    if split is None or spec == BUILTIN:
        return split, None
    path = Path(spec).expanduser()
    if not path.is_file() or has_split_field(path) or absolute_data(spec) == trained_on:
        return split, None
    note = (f"{spec} has no 'split' field: scoring every row, not a '{split}' split (add a 'split' field to "
            "the rows to score only those)")
    return None, note


@contextmanager
def naming_fallback(given: str | None, option: str = "--data") -> Iterator[None]:
    """Re-raise an InputError (bad data) noting that `option` was missing and the built-in dataset was used."""
    try:
        yield
    except InputError as exc:
        if given is None and exc.args and "built-in" not in str(exc.args[0]):
            exc.args = (f"{exc.args[0]} (no {option} was given, so the built-in '{BUILTIN}' dataset was used; "
                        f"pass {option} FILE.jsonl for your own data)", *exc.args[1:])
        raise
