"""mmedge's cache folders: where they are ($MMEDGE_CACHE_DIR, XDG) and whether one is private enough to trust."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
CACHE_ENV = "MMEDGE_CACHE_DIR"  # mmedge's cache root (embeddings/, ort-graphs/, hashes/), or "off" to disable caching
OFF = {"off", "0", "none", "false", "no", ""}
SWITCHED_OFF = {"0", "false", "no", "off"}  # a per-cache switch (MMEDGE_ORT_GRAPH_CACHE, ...) set to one: off
_warned: set[tuple[Path, str]] = set()  # one warning per folder and reason (a load checks the folder per file)


def cache_base() -> Path | None:
    """$MMEDGE_CACHE_DIR (None when 'off'), else $XDG_CACHE_HOME/mmedge, else ~/.cache/mmedge."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mmedge"


def cache_folder(subdir: str, switch: str | None = None) -> Path | None:
    """`cache_base()/subdir`, or None when the cache is off or the environment variable `switch` turns this one off."""
    if switch is not None and os.environ.get(switch, "1").strip().lower() in SWITCHED_OFF:
        return None
    base = cache_base()
    return None if base is None else base / subdir


def private_folder(root: Path) -> bool:
    """False (with a warning) when `root` is another user's or writable by group/others; True if absent.

    A cache whose entries are trusted (optimized graphs, hash records) must be one only this user can
    write: anyone else who could would plant entries.
    """
    try:
        st = root.stat()
    except FileNotFoundError:
        return True  # made by its writer with mode 0o700
    except OSError as exc:
        warn_once(root, "cache folder %s not usable (%s); working without it", exc)
        return False
    getuid = getattr(os, "getuid", None)  # POSIX only
    foreign = getuid is not None and st.st_uid != getuid()
    if foreign or st.st_mode & 0o022:
        who = "owned by another user" if foreign else "writable by group/others"
        warn_once(root, "cache folder %s is %s; not using it (set %s to a private folder)", who, CACHE_ENV)
        return False
    return True


def warn_once(root: Path, message: str, *args: object) -> None:
    """Log `message` (its first %s is `root`) the first time this folder gives this reason in this process."""
    key = (root, message % (root, *args))
    if key not in _warned:
        _warned.add(key)
        log.warning(message, root, *args)
