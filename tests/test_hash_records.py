"""Hash records: a file hashed once is not read again while it provably has not changed; any change is seen."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pytest

import mmedge.cache_dirs as cache_dirs
import mmedge.hash_records as records
from mmedge.bundle import Bundle
from mmedge.errors import BundleError
from mmedge.hash_records import checked_sha256, record_path
from mmedge.io import sha256_file


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache folder; files count as settled at once (no 2 s wait for the racy window)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MMEDGE_CACHE_DIR", str(folder))
    monkeypatch.delenv("MMEDGE_HASH_RECORDS", raising=False)
    monkeypatch.setattr(records, "RACY_NS", 0)
    return folder


def _no_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object, *args: object) -> str:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(records, "sha256_file", refuse)


def _same_size_edit(path: Path) -> None:
    """Change one byte and put mtime back: only ctime (which nobody can set back) still tells."""
    st = path.stat()
    time.sleep(0.05)  # past the filesystem's timestamp tick
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


@pytest.mark.parametrize("size", [0, 5, (8 << 20) + 3])
def test_sha256_file_matches_hashlib_across_block_boundaries(tmp_path: Path, size: int):
    path = tmp_path / "f.bin"
    payload = os.urandom(size)
    path.write_bytes(payload)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_a_recorded_file_is_not_read_again(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights" * 1000)
    digest = checked_sha256(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record_path(cache / "hashes", path.resolve()).is_file()
    _no_reads(monkeypatch)
    assert checked_sha256(path) == digest


def test_an_edit_that_restores_size_and_mtime_is_still_hashed_again(tmp_path: Path, cache: Path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights" * 1000)
    before = checked_sha256(path)
    _same_size_edit(path)
    after = checked_sha256(path)
    assert after != before and after == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bundle_file_altered_after_a_recorded_load_is_reported(tiny_bundle: Path, cache: Path):
    Bundle.load(tiny_bundle).artifact_path("text", "fp32")  # verified and recorded
    assert any((cache / "hashes").iterdir())
    _same_size_edit(tiny_bundle / "text.onnx")
    with pytest.raises(BundleError, match=r"bundle file altered: .*text\.onnx"):
        Bundle.load(tiny_bundle).artifact_path("text", "fp32")


def test_a_file_changed_just_before_its_hash_is_not_recorded(tmp_path: Path, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(records, "RACY_NS", 2_000_000_000)
    path = tmp_path / "fresh.onnx"
    path.write_bytes(b"just written")
    checked_sha256(path)  # a write in the same timestamp tick after this hash would leave the stamps as they are
    assert not record_path(cache / "hashes", path.resolve()).exists()


def _forge(root: Path, path: Path, digest: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    record = {"format": records.FORMAT, "path": str(path.resolve()), "stamps": records.stamps(path.stat()),
              "sha256": digest}
    record_path(root, path.resolve()).write_text(json.dumps(record))


def test_records_are_trusted_only_in_a_private_folder(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    _forge(cache / "hashes", path, "0" * 64)
    assert checked_sha256(path) == "0" * 64  # a record this user wrote is believed: so the folder must be private
    (cache / "hashes").chmod(0o777)
    with caplog.at_level(logging.WARNING, logger=cache_dirs.__name__):
        assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()
        assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()  # a load checks it once per file
    assert caplog.text.count("writable by group/others") == 1  # said once per folder, not once per file


def test_records_off_hashes_every_time(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    _forge(cache / "hashes", path, "0" * 64)
    monkeypatch.setenv("MMEDGE_HASH_RECORDS", "0")
    assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()
    monkeypatch.setenv("MMEDGE_HASH_RECORDS", "1")
    monkeypatch.setenv("MMEDGE_CACHE_DIR", "off")
    assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()


def test_a_record_of_another_path_or_format_is_ignored(tmp_path: Path, cache: Path):
    path, other = tmp_path / "a.onnx", tmp_path / "b.onnx"
    path.write_bytes(b"weights")
    other.write_bytes(b"weights")
    _forge(cache / "hashes", other, "0" * 64)
    record_path(cache / "hashes", path.resolve()).write_text(record_path(cache / "hashes", other.resolve()).read_text())
    assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()
    record_path(cache / "hashes", path.resolve()).write_text("not json")
    assert checked_sha256(path) == hashlib.sha256(b"weights").hexdigest()
