"""Bundle updates as transactions: one writer at a time, new files under fresh names, bundle.json as the commit.

A writer (`mmedge export`, `quantize`, `build`) holds the bundle's writer lock for its whole
read-modify-write, re-reads bundle.json under it, writes every new file under a name no live file has
(content-addressed: `image.int8.<sha12>.onnx`), then replaces bundle.json atomically (temp + fsync +
rename + folder fsync): that rename is the single commit point. Files the new bundle.json no longer
references are kept for one generation (a reader that loaded the previous bundle.json still finds them)
and removed by the next commit. Temp files and uncommitted files of killed writers are removed by the
next writer: holding the lock proves their writer is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from mmedge.bundle import ENGINE_DIR, MANIFEST, Bundle
from mmedge.errors import BundleError
from mmedge.io import current_umask, exchange_paths, fsync_dir, fsync_file, sha256_file

log = logging.getLogger(__name__)
LOCK_TIMEOUT_ENV = "MMEDGE_LOCK_TIMEOUT"  # seconds a second writer waits for the lock (default below)
DEFAULT_LOCK_TIMEOUT = 600.0
TEMP_SUFFIX = ".tmp"
_held: dict[tuple[Path, int], int] = {}  # (bundle root, thread) holding the lock: re-entrant per thread
_held_guard = threading.Lock()


# ---- the writer lock ---------------------------------------------------------------------------
def _canonical(root: str | Path) -> Path:
    return Path(os.path.abspath(root))


def lock_path(root: str | Path) -> Path:
    """The lock file of a bundle: a sibling of its folder, so a whole-folder swap never moves it."""
    root = _canonical(root)
    return root.parent / f".{root.name}.lock"


def _owner_path(root: str | Path) -> Path:
    return lock_path(root).with_suffix(".writer")


def lock_timeout() -> float:
    """Seconds a writer waits for another one ($MMEDGE_LOCK_TIMEOUT, default 600)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        raise BundleError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def _holder(root: Path) -> str:
    try:
        return _owner_path(root).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def writer_lock(root: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the bundle's writer lock; wait up to `timeout` s for another writer, then a one-line BundleError."""
    root = _canonical(root)
    mine = (root, threading.get_ident())
    with _held_guard:
        reentered = bool(_held.get(mine))
        if reentered:
            _held[mine] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[mine] -= 1
        return
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    wait = lock_timeout() if timeout is None else timeout
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("bundle %s is being written by pid %s; waiting up to %g s", root, _holder(root), wait)
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise BundleError(
                f"another mmedge process is writing this bundle (pid {_holder(root)}); wait for it or remove "
                f"the stale lock {path} if that process is gone (waited {wait:g} s; {LOCK_TIMEOUT_ENV} sets "
                "the wait)") from None
    try:
        _owner_path(root).write_text(f"{os.getpid()}\n")
        with _held_guard:
            _held[mine] = 1
        yield
    finally:
        with _held_guard:
            _held.pop(mine, None)
        lock.release()


# ---- what a bundle references, and clean-up --------------------------------------------------------
def referenced(bundle: Bundle) -> set[str]:
    """Every relative path the bundle.json of `bundle` names (engine builder logs included)."""
    refs = {MANIFEST, *(bundle.files or {})}
    refs |= {art.file for comp in bundle.components.values() for art in comp.artifacts.values()}
    if bundle.preprocessing.text is not None:
        refs.add(bundle.preprocessing.text.tokenizer)
    for per_precision in bundle.engines.values():
        for records in (per_precision or {}).values() if isinstance(per_precision, dict) else ():
            for rec in (records or {}).values() if isinstance(records, dict) else ():
                if not isinstance(rec, dict):
                    continue
                refs |= {str(rec[k]) for k in ("plan", "sidecar") if k in rec}
                if str(rec.get("sidecar", "")).endswith(".json"):
                    refs.add(str(rec["sidecar"])[: -len(".json")] + ".log")
    return refs


def _managed(root: Path) -> Iterator[tuple[str, Path]]:
    """Files a writer may create and so may remove: top-level ONNX files, engine files, temp files."""
    for folder, prefix in ((root, ""), (root / ENGINE_DIR, f"{ENGINE_DIR}/")):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if not entry.is_file(follow_symlinks=False):
                continue
            if prefix or entry.name.endswith(".onnx") or is_temp(entry.name):
                yield prefix + entry.name, Path(entry.path)


def is_temp(name: str) -> bool:
    """True for the temp files mmedge writes before a rename (`.NAME.XXXX.tmp`)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_temps(root: Path) -> list[str]:
    """Remove temp files left by killed writers (call with the lock held); the names removed."""
    removed = [rel for rel, full in _managed(root) if is_temp(full.name)]
    for rel in removed:
        (root / rel).unlink(missing_ok=True)
    if removed:
        log.info("removed %d temp file(s) left by an interrupted writer in %s", len(removed), root)
    return removed


def collect(root: Path, keep: set[str]) -> list[str]:
    """Remove managed files not in `keep` (call with the lock held, after the commit); the names removed."""
    removed = [rel for rel, _ in _managed(root) if rel not in keep]
    for rel in removed:
        (root / rel).unlink(missing_ok=True)
    if removed:
        fsync_dir(root)
    return removed


# ---- the transaction ---------------------------------------------------------------------------
@dataclass
class NewFile:
    """A file being written: write `tmp`; after the block, `name` is its final (content-addressed) name."""

    tmp: Path
    name: str = ""


@dataclass
class Transaction:
    """An open update of a bundle: the freshly read Bundle to change, and the files written so far."""

    bundle: Bundle
    before: set[str]
    created: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def new_file(self, stem: str, ext: str) -> Iterator[NewFile]:
        """Write a new file under a temp name; on success it becomes `<stem>.<sha12><ext>` (never a live name)."""
        root, folder = self.bundle.root, Path(stem).parent
        temp_name = f".{Path(stem).name}{ext}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        tmp = self.bundle.path(temp_name if folder == Path(".") else f"{folder.as_posix()}/{temp_name}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        out = NewFile(tmp)
        try:
            yield out
            fsync_file(tmp)
            name = f"{stem}.{sha256_file(tmp)[:12]}{ext}"
            os.replace(tmp, self.bundle.path(name))  # same name = same bytes, so replacing a live one is harmless
            self.created.append(name)
            out.name = name
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(root / folder)

    def commit(self) -> None:
        """Replace bundle.json (the commit point), then remove what neither it nor the previous one references."""
        self.bundle.save()
        removed = collect(self.bundle.root, self.before | referenced(self.bundle))
        if removed:
            log.info("removed %d file(s) no longer referenced: %s", len(removed), ", ".join(sorted(removed)))

    def abort(self) -> None:
        """Remove the files this transaction wrote that the committed bundle.json does not reference."""
        for name in self.created:
            if name not in self.before:
                self.bundle.path(name).unlink(missing_ok=True)
        remove_temps(self.bundle.root)


@contextlib.contextmanager
def update(target: Bundle | str | Path, verify: bool | None = None) -> Iterator[Transaction]:
    """Lock the bundle, re-read bundle.json, yield a Transaction; commit on success, roll back on error.

    A `target` Bundle object is brought up to date with what was committed.
    """
    root = target.root if isinstance(target, Bundle) else Path(target)
    if verify is None:
        verify = target.verify_hashes if isinstance(target, Bundle) else True
    with writer_lock(root):
        remove_temps(root)
        fresh = Bundle.load(root, verify=verify)
        if isinstance(target, Bundle):
            fresh.inherit_verified(target)
        txn = Transaction(fresh, referenced(fresh))
        try:
            yield txn
        except BaseException:
            txn.abort()
            raise
        txn.commit()
    if isinstance(target, Bundle):
        target.adopt(fresh)


# ---- whole-folder replacement (re-export) ---------------------------------------------------------
def _siblings(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.{kind}-*"))


def recover_folder(out: Path) -> None:
    """Undo a killed swap (call with the lock held): restore a moved-away bundle, drop half-built ones."""
    out = _canonical(out)
    old = _siblings(out, "old")
    if not out.exists() and old:
        os.rename(old[-1], out)
        log.warning("restored bundle %s from an interrupted re-export", out)
    for leftover in _siblings(out, "new") + _siblings(out, "old"):
        shutil.rmtree(leftover, ignore_errors=True)


def staging_folder(out: Path) -> Path:
    """A fresh sibling folder to build a bundle in before it replaces `out`."""
    out = _canonical(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; the bundle should be an ordinary folder
    return staging


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under `folder` to disk."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


def swap_in(staging: Path, out: Path) -> None:
    """Put the folder `staging` at `out` (an existing `out` is replaced whole, atomically where the OS can)."""
    out = _canonical(out)
    fsync_tree(staging)
    if not out.exists():
        os.rename(staging, out)
    elif exchange_paths(staging, out):  # one atomic step: readers see the old folder or the new one
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old bundle
    else:  # two renames: for a moment `out` does not exist (a killed run is undone by recover_folder)
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        os.rename(out, old)
        os.rename(staging, out)
        fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(out.parent)
