"""A pytest plugin for `make mutate`: the tiny model is trained and exported once, not once per mutant.

mutmut runs the selected tests in a fresh process for every mutant, so the session fixtures in
tests/conftest.py (`tiny_run`: ~20 s of training, `tiny_bundle_pristine`: the ONNX export) would be
rebuilt hundreds of times. With $MMEDGE_TEST_FIXTURE_CACHE set (the Makefile points it into mutants/),
this plugin wraps `train_run` and `export_run`: the first call stores its output folder there, later
calls with the same inputs copy it back. Neither function is in the mutated set; the code that is
(bundle, preprocessing, precision, metrics, the int8 checker) still runs in every test that uses the
copied run or bundle. Without the variable the plugin does nothing.

Loaded with `-p mutmut_fixture_cache` (the Makefile puts this folder on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "MMEDGE_TEST_FIXTURE_CACHE"


def _tree_digest(folder: Path) -> str:
    """sha256 over the relative names and bytes of every file under `folder`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cached(cache: Path, key: str, out_dir: Path, produce: Callable[[], Any]) -> Any:
    """Copy the stored folder for `key` to out_dir, or run `produce` (which writes out_dir) and store it."""
    stored = cache / key
    if stored.is_dir():
        shutil.copytree(stored, out_dir, dirs_exist_ok=True)
        return None
    result = produce()
    staging = cache / f".{key}.{uuid.uuid4().hex}"
    shutil.copytree(out_dir, staging)
    try:
        staging.rename(stored)  # atomic; a concurrent writer that got there first wins
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def pytest_configure(config: Any) -> None:
    """Wrap train_run and export_run when $MMEDGE_TEST_FIXTURE_CACHE names a folder."""
    root = os.environ.get(ENV)
    if not root:
        return
    cache = Path(root)
    cache.mkdir(parents=True, exist_ok=True)
    import mmedge.exporters.export_run as export_mod
    import mmedge.train.run as train_mod

    real_train, real_export = train_mod.train_run, export_mod.export_run
    if getattr(real_train, "_fixture_cache", False):
        return  # already wrapped in this process (mutmut runs pytest.main repeatedly)

    def train_run(cfg: Any, out_dir: Any, *args: Any, **kwargs: Any) -> Any:
        key = "run-" + hashlib.sha256(repr((cfg, args, sorted(kwargs.items()))).encode()).hexdigest()[:16]
        return _cached(cache, key, Path(out_dir), lambda: real_train(cfg, out_dir, *args, **kwargs))

    def export_run(run_dir: Any, out_dir: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = repr((_tree_digest(Path(run_dir)), args, sorted(kwargs.items())))
        key = "bundle-" + hashlib.sha256(inputs.encode()).hexdigest()[:16]
        return _cached(cache, key, Path(out_dir), lambda: real_export(run_dir, out_dir, *args, **kwargs))

    train_run._fixture_cache = True  # type: ignore[attr-defined]
    train_mod.train_run = train_run  # type: ignore[assignment]
    export_mod.export_run = export_run  # type: ignore[assignment]
