"""A verified cache of ONNX Runtime's optimized graphs: load time without the optimizer's passes.

ONNX Runtime spends most of a session's creation in its graph optimizer (the int8 edge image
encoder: ~60 ms optimizing vs ~13 ms loading the optimized graph). The first session of an artifact
saves its optimized graph (`SessionOptions.optimized_model_filepath`); later sessions load that with
optimization off. An entry is keyed by everything that shapes the optimized graph: the artifact's
sha256 as bundle.json records it, the ONNX Runtime version, providers, optimization level and this
CPU (level-3 layouts are hardware-specific). Each entry records its own sha256, checked on every
load: an altered or truncated entry is reported, deleted and rebuilt, never run. Where: the folder
$MMEDGE_CACHE_DIR ("off" disables it), else $XDG_CACHE_HOME/mmedge, else ~/.cache/mmedge (sub-folder ort-graphs);
MMEDGE_ORT_GRAPH_CACHE=0 turns it off. A folder not owned by this user, or writable by group/others
(e.g. a shared /tmp), is refused with a warning: anyone who can write it could plant a graph.
On a miss the source is read into memory and its sha256 checked against bundle.json before ONNX
Runtime optimizes exactly those bytes, so an entry filed under a key is always derived from the bytes
that key names (the Bundle checks a file once per object; a file altered later would otherwise be
cached under the genuine key for every later process). On a hit ONNX Runtime reads the verified entry
from its path (hashed by streaming just before): handing it the bytes would hold the graph twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmedge.errors import BundleError
from mmedge.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)
SUBDIR = "ort-graphs"
FORMAT = 1  # bump when the entry layout changes


def cache_root() -> Path | None:
    """The graph cache folder, or None when MMEDGE_ORT_GRAPH_CACHE=0."""
    if os.environ.get("MMEDGE_ORT_GRAPH_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    base = os.environ.get("MMEDGE_CACHE_DIR")
    if base is not None and base.strip().lower() in ("off", "0", "none", ""):
        return None  # the same switch that turns the embedding cache off
    if base:
        return Path(base).expanduser() / SUBDIR
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mmedge" / SUBDIR


@functools.lru_cache(maxsize=1)
def machine_fingerprint() -> str:
    """CPU model and instruction-set flags: ORT's level-3 graph layouts depend on them."""
    text = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        text += platform.processor()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_key(source_sha256: str, providers: list[str], level: str) -> str:
    """Cache key of one optimized graph."""
    import onnxruntime as ort

    parts = [str(FORMAT), source_sha256, ort.__version__, ",".join(providers), level, machine_fingerprint()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


def read_entry(root: Path, key: str) -> Path | None:
    """The cached graph's path if present and intact (sha256 checked now); an altered entry is logged and removed."""
    graph, meta = root / f"{key}.onnx", root / f"{key}.json"
    if not graph.is_file() or not meta.is_file():
        return None
    try:
        expected = json.loads(meta.read_text())["sha256"]
        actual = sha256_file(graph)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ORT graph cache entry %s unreadable (%s); rebuilding it", key, exc)
        drop_entry(root, key)
        return None
    if actual != expected:
        log.warning("ORT graph cache entry %s does not match its recorded sha256; deleted and rebuilt", graph)
        drop_entry(root, key)
        return None
    return graph


def drop_entry(root: Path, key: str) -> None:
    """Delete an entry (both files; missing ones are fine)."""
    for suffix in (".json", ".onnx"):
        (root / f"{key}{suffix}").unlink(missing_ok=True)


def write_entry(root: Path, key: str, build: Callable[[Path], Any], info: dict[str, Any]) -> Any:
    """Run `build(path)` (a session saving its optimized graph to path), record the graph; build's result."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not trusted_root(root):  # someone else made it between the first check and now
        raise PermissionError(f"{root} is not a private folder")
    with atomic_path(root / f"{key}.onnx") as tmp:
        result = build(tmp)
        digest = sha256_file(tmp)
    write_json(root / f"{key}.json", {**info, "sha256": digest})  # the commit point: after the graph
    return result


def trusted_root(root: Path) -> bool:
    """False (with a warning) when the cache folder is another user's or writable by group/others."""
    try:
        st = root.stat()
    except FileNotFoundError:
        return True  # made by write_entry, owned by this user (mkdir honours the umask)
    except OSError as exc:
        log.warning("ORT graph cache at %s not writable (%s); loading without it", root, exc)
        return False
    getuid = getattr(os, "getuid", None)  # POSIX only
    foreign = getuid is not None and st.st_uid != getuid()
    if foreign or st.st_mode & 0o022:
        who = "owned by another user" if foreign else "writable by group/others"
        log.warning("ORT graph cache at %s is %s; not using it (set MMEDGE_CACHE_DIR to a private folder)",
                    root, who)
        return False
    return True


def verified_source(source: bytes | str, source_sha256: str) -> bytes:
    """The source graph's bytes, checked against the sha256 bundle.json records (BundleError otherwise)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != source_sha256:
        where = "graph bytes" if isinstance(source, bytes) else source
        raise BundleError(f"bundle file altered since export: {where} has sha256 {actual[:12]}…, bundle.json "
                          f"expects {source_sha256[:12]}…; re-run mmedge export (or quantize) and load it again")
    return data


def cached_session(load_source: Callable[[], bytes | str], source_sha256: str | None, providers: list[str],
                   make_options: Callable[[bool], Any]) -> Any:
    """An InferenceSession of the source graph (bytes or a path), through the cache when `source_sha256` is known.

    `make_options(optimize)` gives SessionOptions with full optimization (True) or none (a cached graph).
    """
    import onnxruntime as ort

    root = cache_root()
    if root is None or source_sha256 is None or not trusted_root(root):
        return ort.InferenceSession(load_source(), sess_options=make_options(True), providers=providers)
    key = entry_key(source_sha256, providers, "all")
    cached = read_entry(root, key)
    if cached is not None:
        log.debug("ORT graph cache hit %s", key)
        return ort.InferenceSession(str(cached), sess_options=make_options(False), providers=providers)
    model = verified_source(load_source(), source_sha256)  # the entry is made from exactly these bytes

    def build(path: Path) -> Any:
        opts = make_options(True)
        opts.optimized_model_filepath = str(path)
        return ort.InferenceSession(model, sess_options=opts, providers=providers)

    info = {"source_sha256": source_sha256, "onnxruntime": ort.__version__, "providers": providers}
    try:
        return write_entry(root, key, build, info)
    except OSError as exc:  # a read-only or full cache folder costs load time, never correctness
        log.warning("ORT graph cache at %s not writable (%s); loading without it", root, exc)
        return ort.InferenceSession(model, sess_options=make_options(True), providers=providers)
