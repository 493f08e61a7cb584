"""Shared pieces of the reliability suite: reproducible hypothesis settings, error and snapshot checks."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

import mmedge
from mmedge.errors import MmedgeError

MMEDGE_DIR = str(Path(mmedge.__file__).resolve().parent)


def fuzz_settings(max_examples: int) -> settings:
    """Derandomized (the same cases on every run and machine), bounded, no example database on disk."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def check_error(exc: BaseException, cls: type[MmedgeError] | tuple[type[MmedgeError], ...]) -> str:
    """`exc` is exactly `cls` (not a subclass, not a foreign error), raised by mmedge, with a one-line message."""
    classes = cls if isinstance(cls, tuple) else (cls,)
    detail = "".join(traceback.format_exception(exc))
    assert type(exc) in classes, f"expected {[c.__name__ for c in classes]}, got {type(exc).__name__}:\n{detail}"
    frames = traceback.extract_tb(exc.__traceback__)
    # the last frame (where it was raised) is mmedge's own code, not numpy/Pillow/soundfile/onnxruntime
    assert frames and frames[-1].filename.startswith(MMEDGE_DIR), detail
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, repr(message)
    return message


def outcome(call: Callable[[], Any], cls: type[MmedgeError] | tuple[type[MmedgeError], ...]) -> tuple[Any, str | None]:
    """(result, None) when call() succeeds, (None, message) when it raises exactly `cls` (checked as above)."""
    try:
        return call(), None
    except Exception as exc:  # anything else fails the test in check_error, with its traceback
        return None, check_error(exc, cls)


def tree_digest(root: Path) -> dict[str, str]:
    """relative path → sha256 of every file under root (and '->target' for symlinks): 'nothing lost' checks."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "->" + str(path.readlink())
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out
