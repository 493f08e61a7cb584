"""A verified cache of ONNX Runtime's optimized graphs: load time without the optimizer's passes.

ONNX Runtime spends most of a session's creation in its graph optimizer (the int8 edge image
encoder: ~60 ms optimizing vs ~13 ms loading the optimized graph). The first session of an artifact
saves its optimized graph (`SessionOptions.optimized_model_filepath`) with its weights, already
prepacked for this CPU's kernels, in a `.data` file beside it; later sessions load that with
optimization off and ONNX Runtime maps the weights file instead of parsing, copying and repacking
the weights (in a new process that was most of the time left: the edge int8 text encoder ~65 ms ->
~20 ms). An entry is keyed by everything that shapes the optimized graph: the artifact's sha256 as
bundle.json records it, the ONNX Runtime version, providers, optimization level and this CPU
(level-3 layouts and prepacked weights are hardware-specific). Each entry records the sha256 of its
graph and weights files, checked on every load (through mmedge.hash_records: a file unchanged since
its last hash is not read again): an altered, truncated or missing file is reported, the entry
deleted and rebuilt, never run. Entries are never rewritten in place (a mapped file must not change
under a running session). Where: the folder $MMEDGE_CACHE_DIR ("off" disables it), else
$XDG_CACHE_HOME/mmedge, else ~/.cache/mmedge (sub-folder ort-graphs); MMEDGE_ORT_GRAPH_CACHE=0 turns
it off. A folder not owned by this user, or writable by group/others (e.g. a shared /tmp), is
refused with a warning: anyone who can write it could plant a graph.
On a miss the source is read into memory and its sha256 checked against bundle.json before ONNX
Runtime optimizes exactly those bytes, so an entry filed under a key is always derived from the bytes
that key names (the Bundle checks a file once per object; a file altered later would otherwise be
cached under the genuine key for every later process). On a hit ONNX Runtime reads the verified entry
from its path: handing it the bytes would hold the graph twice."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmedge.cache_dirs import cache_folder, private_folder
from mmedge.errors import BundleError
from mmedge.hash_records import checked_sha256
from mmedge.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)
SUBDIR = "ort-graphs"
FORMAT = 2  # bump when the entry layout changes (2: weights in a mapped .data file beside the graph)


def cache_root() -> Path | None:
    """The graph cache folder, or None when MMEDGE_ORT_GRAPH_CACHE=0 or the cache is off."""
    return cache_folder(SUBDIR, "MMEDGE_ORT_GRAPH_CACHE")


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
    """The cached graph's path if it and its weights file are present and intact (sha256 checked now, through
    the hash records); an altered or incomplete entry is logged and removed."""
    graph, meta = root / f"{key}.onnx", root / f"{key}.json"
    if not graph.is_file() or not meta.is_file():
        return None
    try:
        info = json.loads(meta.read_text())
        files = {graph: info["sha256"]}
        if info.get("data") is not None:
            files[root / safe_name(info["data"]["file"], key)] = info["data"]["sha256"]
        altered = [path.name for path, expected in files.items() if checked_sha256(path) != expected]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ORT graph cache entry %s unreadable (%s); rebuilding it", key, exc)
        drop_entry(root, key)
        return None
    if altered:
        log.warning("ORT graph cache entry %s: %s does not match its recorded sha256; deleted and rebuilt",
                    key, ", ".join(altered))
        drop_entry(root, key)
        return None
    return graph


def safe_name(name: object, key: str) -> str:
    """A weights file name read from an entry's record: this entry's own, in the cache folder (ValueError otherwise)."""
    if not isinstance(name, str) or not name.startswith(f"{key}.") or "/" in name or "\\" in name:
        raise ValueError(f"weights file {name!r} is not this entry's")
    return name


def drop_entry(root: Path, key: str) -> None:
    """Delete an entry: its record, graph and weights files (missing ones are fine)."""
    for path in [root / f"{key}.json", root / f"{key}.onnx", *root.glob(f"{key}.*.data")]:
        path.unlink(missing_ok=True)


def write_entry(root: Path, key: str, build: Callable[[Path, str], Any], info: dict[str, Any]) -> Any:
    """Run `build(path, data_name)` (a session saving its optimized graph to path, weights to data_name beside
    it), record both files; build's result."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not private_folder(root):  # someone else made it between the first check and now
        raise PermissionError(f"{root} is not a private folder")
    # the graph names its weights file, so that name is final from the start: unique per writer, so two
    # processes filling the same entry never write one file
    data = root / f"{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.data"
    try:
        with atomic_path(root / f"{key}.onnx") as tmp:
            result = build(tmp, data.name)
            digest = sha256_file(tmp)
            weights = {"file": data.name, "sha256": sha256_file(data)} if data.exists() else None
        write_json(root / f"{key}.json", {**info, "sha256": digest, "data": weights})  # the commit point
    except BaseException:
        data.unlink(missing_ok=True)
        raise
    return result


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
    if root is None or source_sha256 is None or not private_folder(root):
        return ort.InferenceSession(load_source(), sess_options=make_options(True), providers=providers)
    key = entry_key(source_sha256, providers, "all")
    cached = read_entry(root, key)
    if cached is not None:
        log.debug("ORT graph cache hit %s", key)
        return ort.InferenceSession(str(cached), sess_options=make_options(False), providers=providers)
    model = verified_source(load_source(), source_sha256)  # the entry is made from exactly these bytes

    def build(path: Path, data_name: str) -> Any:
        opts = make_options(True)
        opts.optimized_model_filepath = str(path)
        # weights in a file beside the graph, prepacked for this CPU's kernels: a later load maps them rather
        # than parsing, copying and repacking them (the edge int8 text encoder: ~65 -> ~20 ms in a new process)
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", data_name)
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        opts.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
        return ort.InferenceSession(model, sess_options=opts, providers=providers)

    info = {"source_sha256": source_sha256, "onnxruntime": ort.__version__, "providers": providers}
    try:
        return write_entry(root, key, build, info)
    except OSError as exc:  # a read-only or full cache folder costs load time, never correctness
        log.warning("ORT graph cache at %s not writable (%s); loading without it", root, exc)
        return ort.InferenceSession(model, sess_options=make_options(True), providers=providers)
