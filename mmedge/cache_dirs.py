"""mmedge's cache folders: where they are ($MMEDGE_CACHE_DIR, XDG) and whether one is private enough to trust."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
CACHE_ENV = "MMEDGE_CACHE_DIR"  # mmedge's cache root (embeddings/, ort-graphs/, hashes/), or "off" to disable caching
OFF = {"off", "0", "none", "false", "no", ""}


def cache_base() -> Path | None:
    """$MMEDGE_CACHE_DIR (None when 'off'), else $XDG_CACHE_HOME/mmedge, else ~/.cache/mmedge."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mmedge"


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
        log.warning("cache folder %s not usable (%s); working without it", root, exc)
        return False
    getuid = getattr(os, "getuid", None)  # POSIX only
    foreign = getuid is not None and st.st_uid != getuid()
    if foreign or st.st_mode & 0o022:
        who = "owned by another user" if foreign else "writable by group/others"
        log.warning("cache folder %s is %s; not using it (set %s to a private folder)", root, who, CACHE_ENV)
        return False
    return True
