"""ONNX Runtime's optimized-graph cache: used on the next load, verified every time, rebuilt when altered."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import mmedge.cache_dirs as cache_dirs
from mmedge.data.digits import load_digits
from mmedge.errors import BundleError
from mmedge.runtime.backends.onnxruntime import graph_cache
from mmedge.runtime.pipeline import Pipeline


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MMEDGE_ORT_GRAPH_CACHE", raising=False)
    return tmp_path / "cache" / graph_cache.SUBDIR


def _logits(bundle: Path, precision: str = "fp32") -> np.ndarray:
    samples = load_digits("test", limit=8).samples
    with Pipeline.from_bundle(bundle, precision=precision, threads=1) as pipe:
        return pipe.predict_batch(samples).logits


def _uncached(bundle: Path, monkeypatch: pytest.MonkeyPatch, precision: str = "fp32") -> np.ndarray:
    with monkeypatch.context() as m:
        m.setenv("MMEDGE_ORT_GRAPH_CACHE", "0")
        return _logits(bundle, precision)


def _spy_hits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hits: list[str] = []
    real = graph_cache.read_entry

    def spy(root: Path, key: str) -> Path | None:
        data = real(root, key)
        if data is not None:
            hits.append(key)
        return data

    monkeypatch.setattr(graph_cache, "read_entry", spy)
    return hits


def test_second_load_uses_the_cache_with_same_results(quantized_bundle_pristine: Path, cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    for precision in ("fp32", "int8"):
        ref = _uncached(quantized_bundle_pristine, monkeypatch, precision)
        first = _logits(quantized_bundle_pristine, precision)
        hits = _spy_hits(monkeypatch)
        second = _logits(quantized_bundle_pristine, precision)
        monkeypatch.undo()
        monkeypatch.setenv("MMEDGE_CACHE_DIR", str(cache.parent))
        assert len(hits) == 4  # every component came from the cache
        np.testing.assert_allclose(first, ref, atol=1e-5)
        np.testing.assert_allclose(second, ref, atol=1e-5)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 8  # 4 components x 2 precisions
    meta = json.loads(entries[0].read_text())
    assert {"sha256", "source_sha256", "onnxruntime", "providers"} <= set(meta)


def test_altered_entry_is_reported_and_rebuilt(tiny_bundle_pristine: Path, cache: Path,
                                               monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    ref = _logits(tiny_bundle_pristine)
    for graph in cache.glob("*.onnx"):  # still a loadable graph, but not the one recorded
        graph.write_bytes(graph.read_bytes() + b"\0")
    hits = _spy_hits(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=graph_cache.__name__):
        again = _logits(tiny_bundle_pristine)
    assert not hits
    assert "does not match its recorded sha256" in caplog.text
    np.testing.assert_allclose(again, ref, atol=1e-5)
    for meta in cache.glob("*.json"):  # rebuilt entries verify again
        assert graph_cache.read_entry(cache, meta.stem) is not None


def _weights_files(cache: Path) -> dict[Path, dict[str, str]]:
    """Each entry's weights file (mapped by ONNX Runtime on a hit) and its record."""
    out = {}
    for meta in cache.glob("*.json"):
        data = json.loads(meta.read_text())["data"]
        if data is not None:
            out[cache / data["file"]] = data
    return out


def test_weights_live_in_a_verified_file_beside_the_graph(tiny_bundle_pristine: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture):
    ref = _uncached(tiny_bundle_pristine, monkeypatch)
    _logits(tiny_bundle_pristine)
    weights = _weights_files(cache)
    assert weights and all(path.is_file() and path.stat().st_size > 0 for path in weights)
    victim = max(weights, key=lambda path: path.stat().st_size)
    payload = bytearray(victim.read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # one weight changed: the graph file alone would still verify
    victim.write_bytes(bytes(payload))
    hits = _spy_hits(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=graph_cache.__name__):
        again = _logits(tiny_bundle_pristine)
    assert len(hits) == 3 and f"{victim.name} does not match its recorded sha256" in caplog.text
    assert not victim.exists()  # the altered entry's files are gone; a fresh one took its place
    np.testing.assert_allclose(again, ref, atol=1e-5)
    assert len(_weights_files(cache)) == len(weights)


def test_a_missing_or_foreign_weights_file_rebuilds_the_entry(tiny_bundle_pristine: Path, cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture):
    ref = _uncached(tiny_bundle_pristine, monkeypatch)
    _logits(tiny_bundle_pristine)
    metas = sorted(cache.glob("*.json"), key=lambda m: json.loads(m.read_text())["data"] is None)
    first, second = metas[0], metas[1]
    (cache / json.loads(first.read_text())["data"]["file"]).unlink()
    record = json.loads(second.read_text())
    record["data"]["file"] = "../outside.data"  # a record may only name its own entry's file
    second.write_text(json.dumps(record))
    hits = _spy_hits(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=graph_cache.__name__):
        again = _logits(tiny_bundle_pristine)
    assert len(hits) == 2 and caplog.text.count("unreadable") == 2
    np.testing.assert_allclose(again, ref, atol=1e-5)


def test_a_changed_artifact_never_hits_an_old_entry(tiny_bundle: Path, cache: Path):
    _logits(tiny_bundle)
    (tiny_bundle / "text.onnx").write_bytes(b"garbage")  # bundle.json still records the old sha256
    with pytest.raises(BundleError, match=r"bundle file altered: .*text\.onnx"):
        _logits(tiny_bundle)


def test_cache_off_and_unverified_bundles_write_nothing(tiny_bundle_pristine: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MMEDGE_ORT_GRAPH_CACHE", "0")
    _logits(tiny_bundle_pristine)
    assert not cache.exists()
    monkeypatch.delenv("MMEDGE_ORT_GRAPH_CACHE")
    with Pipeline.from_bundle(tiny_bundle_pristine, verify=False):
        pass
    assert not cache.exists()  # without hashing, the recorded sha256 cannot key the cache


def test_unwritable_cache_folder_still_loads(tiny_bundle_pristine: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MMEDGE_CACHE_DIR", str(blocker))
    with caplog.at_level(logging.WARNING, logger=cache_dirs.__name__):
        assert _logits(tiny_bundle_pristine).shape[0] == 8
    assert "not usable" in caplog.text


def test_a_file_altered_after_the_bundle_checked_it_is_never_cached(tiny_bundle: Path, cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    from mmedge.bundle import Bundle

    samples = load_digits("test", limit=8).samples
    genuine = _uncached(tiny_bundle, monkeypatch)
    loaded = Bundle.load(tiny_bundle)
    with monkeypatch.context() as m:  # this Bundle object now counts text.onnx as checked
        m.setenv("MMEDGE_ORT_GRAPH_CACHE", "0")
        Pipeline.from_bundle(loaded, threads=1).close()
    text = tiny_bundle / "text.onnx"
    original = text.read_bytes()
    text.write_bytes(_altered_graph(original))
    with pytest.raises(BundleError, match=r"bundle file altered since export: .*text\.onnx"), \
            Pipeline.from_bundle(loaded, threads=1) as pipe:
        pipe.predict_batch(samples)
    assert not any(json.loads(m.read_text())["source_sha256"] == loaded.artifact("text", "fp32").sha256
                   for m in cache.glob("*.json"))
    text.write_bytes(original)
    np.testing.assert_allclose(_logits(tiny_bundle), genuine, atol=1e-5)  # a fresh process-like load


def _altered_graph(data: bytes) -> bytes:
    """The same graph with one weight changed: still loadable, different results."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = numpy_helper.to_array(init).copy()
    arr += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return model.SerializeToString()


@pytest.mark.skipif(not hasattr(__import__("os"), "getuid"), reason="POSIX permissions")
def test_a_group_writable_cache_folder_is_refused(tiny_bundle_pristine: Path, cache: Path,
                                                  caplog: pytest.LogCaptureFixture):
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger=cache_dirs.__name__):
        assert _logits(tiny_bundle_pristine).shape[0] == 8
    assert "writable by group/others" in caplog.text
    assert not list(cache.iterdir())  # nothing written into, or read from, a shared folder
