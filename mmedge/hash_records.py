"""sha256 of a file, vouched for by a record of its last hash while the file provably has not changed.

Hashing the artifacts is most of a warm load's own work (the edge int8 text encoder: 23 MB, ~25 ms
of CPU, several times that on a busy core). A file hashed once is recorded with its identity and
change stamps (device, inode, size, mtime_ns, ctime_ns); while all of them match, the recorded
sha256 stands and the file is not read again. Any change through the filesystem moves ctime, and no
unprivileged process can set ctime back (utime sets it to now), so an altered file is hashed again
and reported as before. Records are trusted only:

* in a private cache folder ($MMEDGE_CACHE_DIR/hashes; this user's, not writable by group/others),
  since a planted record could vouch for an altered file; MMEDGE_CACHE_DIR=off or
  MMEDGE_HASH_RECORDS=0 turns records off (every load hashes every file);
* on POSIX, where ctime is the change time (on Windows it is the creation time);
* for files last changed at least RACY_NS before their hash began: a write within the same
  timestamp tick as the hash would leave the stamps unchanged (git's "racy clean" case).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from mmedge.cache_dirs import cache_folder, private_folder
from mmedge.io import sha256_file, write_json

log = logging.getLogger(__name__)
SUBDIR = "hashes"
FORMAT = 1
RACY_NS = 2_000_000_000  # stamps closer than this to the hash's start are not trusted


def records_root() -> Path | None:
    """The records folder, or None where records are off or cannot be trusted on this platform."""
    return cache_folder(SUBDIR, "MMEDGE_HASH_RECORDS") if os.name == "posix" else None


def stamps(st: os.stat_result) -> list[int]:
    """What any change to a file's contents moves: identity, size, modification and change times."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def record_path(root: Path, path: Path) -> Path:
    """Where the record of `path` (resolved) lives."""
    return root / f"{hashlib.sha256(os.fsencode(path)).hexdigest()[:40]}.json"


def recorded_sha256(root: Path, path: Path, st: os.stat_result) -> str | None:
    """The recorded sha256 of `path` when its record matches the file's current stamps, else None."""
    try:
        record = json.loads(record_path(root, path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("path") != str(path):
        return None
    digest = record.get("sha256")
    return digest if record.get("stamps") == stamps(st) and isinstance(digest, str) else None


def checked_sha256(path: str | Path) -> str:
    """Hex sha256 of a file: its record's when the file provably has not changed since, else hashed (and recorded)."""
    full = Path(path).resolve()
    root = records_root()
    if root is None or not private_folder(root):
        return sha256_file(full)
    before = full.stat()
    digest = recorded_sha256(root, full, before)
    if digest is not None:
        return digest
    started = time.time_ns()
    digest = sha256_file(full)
    after = full.stat()
    if stamps(after) == stamps(before) and started - before.st_ctime_ns >= RACY_NS:
        write_record(root, full, after, digest)
    return digest


def write_record(root: Path, path: Path, st: os.stat_result, digest: str) -> None:
    """Record a file's sha256 with its stamps (atomically; a cache that cannot be written is only slower)."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if private_folder(root):
            write_json(record_path(root, path), {"format": FORMAT, "path": str(path), "stamps": stamps(st),
                                                 "sha256": digest})
    except OSError as exc:
        log.debug("hash record for %s not written (%s)", path, exc)
