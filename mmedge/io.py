"""Atomic file writes and hashing: an interrupted run never leaves a half-written file."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without leaving it changed for another thread (reading it means setting it)."""
    with _UMASK_LOCK:  # another thread between the two calls would otherwise keep umask 0 for good
        umask = os.umask(0)
        os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; the result should be an ordinary file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
        fsync_dir(target.parent)  # the rename itself survives a power cut
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file for writing that replaces `path` atomically on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically with stable formatting."""
    with atomic_open(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")


def write_bytes(path: str | Path, payload: bytes) -> None:
    """Write bytes atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(payload)


def fsync_file(path: str | Path) -> None:
    """Flush a file's contents to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (renames, new and removed names) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


def exchange_paths(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # old kernel or a filesystem without it: the caller falls back to two renames
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def sha256_file(path: str | Path, chunk: int = 4 << 20) -> str:
    """Hex sha256 of a file's contents.

    Large blocks: reading and hashing each releases the GIL, and every block costs one wait to take it
    back, so few blocks keep a hash on a load thread from queueing behind the caller's imports. (Not
    mmap: a file truncated meanwhile would kill the process with SIGBUS.)
    """
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        # no bigger than the file: a load hashes several files at once, and each buffer is resident memory
        buffer = memoryview(bytearray(max(1, min(chunk, os.fstat(fh.fileno()).st_size))))
        while size := fh.readinto(buffer):
            digest.update(buffer[:size])
    return digest.hexdigest()
