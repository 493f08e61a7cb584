"""`mmedge migrate`: a schema-1 bundle is refused for use until migrated; then it loads and predicts as exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, invoke

from mmedge.bundle import MANIFEST, TORCH_FILES, Bundle
from mmedge.errors import BundleError
from mmedge.io import sha256_file, write_json
from mmedge.migrate import migrate_bundle
from mmedge.runtime.pipeline import Pipeline
from mmedge.transaction import LOCK_TIMEOUT_ENV

SIDE_FILES = ["torch/model.safetensors", "torch/run.json", "tokenizer.json"]  # the order export records them in
ARTIFACTS = ["text.onnx", "image.onnx", "audio.onnx", "fusion_head.onnx"]


def downgrade(root: Path) -> bytes:
    """Rewrite bundle.json the way an older export wrote it (schema 1, no "files"); the schema-2 bytes before."""
    before = (root / MANIFEST).read_bytes()
    data = json.loads(before)
    data["schema_version"] = 1
    data.pop("files")
    write_json(root / MANIFEST, data)
    return before


def schema_1_message(root: Path) -> str:
    """The exact one-line refusal of a schema-1 bundle."""
    return (f"{root}/bundle.json is schema 1 (written by an older mmedge): its tokenizer and torch reference are not "
            f"hashed; run: mmedge migrate {root} (it records their sha256 after you confirm the files are the ones "
            "you exported), or re-export")


def predict_json(root: Path) -> dict[str, Any]:
    """`mmedge predict --json` on text + image + audio, without the timings."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    image, audio = root.parent / "digit.png", root.parent / "digit.wav"
    if not image.exists():
        Image.fromarray((np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)).save(image)
        sf.write(audio, np.sin(np.arange(8000, dtype=np.float32) / 9.0) * 0.3, 8000)
    result = invoke("predict", root, "--text", "seven", "--image", image, "--audio", audio, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # notes (input conversions) go to stderr
    data.pop("timings_ms", None)
    return data


def test_torch_files_are_the_ones_export_copies():
    from mmedge.train.checkpoint import CHECKPOINT, RUN_META

    assert TORCH_FILES == (CHECKPOINT, RUN_META)


@pytest.mark.parametrize("command", [("predict", "--text", "seven"), ("eval",), ("bench", "--iters", "1"),
                                     ("quantize", "--precision", "fp16")], ids=lambda c: c[0])
def test_schema_1_is_refused_for_use_with_one_line(tiny_bundle: Path, command: tuple[str, ...]):
    downgrade(tiny_bundle)
    before = (tiny_bundle / MANIFEST).read_bytes()
    assert_one_line_error(invoke(command[0], tiny_bundle, *command[1:]), schema_1_message(tiny_bundle))
    assert (tiny_bundle / MANIFEST).read_bytes() == before


def test_migrate_makes_it_load_and_predict_as_exported(tiny_bundle: Path):
    """Migrating records exactly what export recorded: bundle.json is byte for byte the exported one."""
    expected = predict_json(tiny_bundle)
    exported = downgrade(tiny_bundle)
    with pytest.raises(BundleError) as info:
        Bundle.load(tiny_bundle)
    assert str(info.value) == schema_1_message(tiny_bundle)
    with pytest.raises(BundleError, match="is schema 1"):
        Pipeline.from_bundle(tiny_bundle)
    result = invoke("migrate", tiny_bundle)
    assert result.exit_code == 0, result.output
    for relative in SIDE_FILES:
        assert f"recorded {relative}: sha256 {sha256_file(tiny_bundle / relative)[:12]}" in result.output
    assert "schema 1 → 2" in result.output and "4 artifact(s) verified, 3 file(s) hashed" in result.output
    assert (tiny_bundle / MANIFEST).read_bytes() == exported
    bundle = Bundle.load(tiny_bundle)
    bundle.verify()
    assert bundle.schema_version == 2 and list(bundle.files or {}) == SIDE_FILES and bundle.unhashed == []
    assert predict_json(tiny_bundle) == expected
    with Pipeline.from_bundle(tiny_bundle, backend="torch") as pipe:  # the torch reference, now verified
        assert pipe.predict(text="seven").label


def test_migrate_json_report_and_second_run_is_a_no_op(tiny_bundle: Path):
    downgrade(tiny_bundle)
    result = invoke("migrate", tiny_bundle, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["migrated"] is True and (report["from_schema"], report["to_schema"]) == (1, 2)
    assert sorted(report["verified"]) == sorted(ARTIFACTS) and list(report["hashed"]) == SIDE_FILES
    for relative, record in report["hashed"].items():
        full = tiny_bundle / relative
        assert record == {"sha256": sha256_file(full), "bytes": full.stat().st_size}
    migrated = (tiny_bundle / MANIFEST).read_bytes()
    again = invoke("migrate", tiny_bundle, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {"bundle": str(tiny_bundle), "migrated": False, "from_schema": 2,
                                        "to_schema": 2, "verified": [], "hashed": {}}
    assert (tiny_bundle / MANIFEST).read_bytes() == migrated


def test_migrate_of_a_current_bundle_is_a_no_op(tiny_bundle: Path):
    before = (tiny_bundle / MANIFEST).stat()
    result = invoke("migrate", tiny_bundle)
    assert result.exit_code == 0, result.output
    assert "already schema 2: nothing to migrate" in result.output
    after = (tiny_bundle / MANIFEST).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_tampered_onnx_makes_migrate_refuse(tiny_bundle: Path):
    downgrade(tiny_bundle)
    before = (tiny_bundle / MANIFEST).read_bytes()
    path = tiny_bundle / "image.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert_one_line_error(invoke("migrate", tiny_bundle), "not migrated: bundle file altered: ")
    assert (tiny_bundle / MANIFEST).read_bytes() == before  # still schema 1: nothing recorded


def test_side_file_leaving_the_bundle_makes_migrate_refuse(tiny_bundle: Path, tmp_path: Path):
    downgrade(tiny_bundle)
    before = (tiny_bundle / MANIFEST).read_bytes()
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((tiny_bundle / "torch" / "run.json").read_bytes())
    (tiny_bundle / "torch" / "run.json").unlink()
    (tiny_bundle / "torch" / "run.json").symlink_to(outside)
    assert_one_line_error(invoke("migrate", tiny_bundle), "outside the bundle folder")
    assert (tiny_bundle / MANIFEST).read_bytes() == before


def test_missing_tokenizer_makes_migrate_refuse(tiny_bundle: Path):
    downgrade(tiny_bundle)
    (tiny_bundle / "tokenizer.json").unlink()
    assert_one_line_error(invoke("migrate", tiny_bundle), "not migrated: bundle file missing: ")
    with pytest.raises(BundleError, match="is schema 1"):
        Bundle.load(tiny_bundle)


def test_migrate_takes_the_writer_lock(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    downgrade(tiny_bundle)
    before = (tiny_bundle / MANIFEST).read_bytes()
    hold = ("import sys, time\nfrom mmedge.transaction import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tiny_bundle)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.3")
        assert_one_line_error(invoke("migrate", tiny_bundle),
                              f"another mmedge process is writing this bundle (pid {holder.pid}); wait for it")
        assert (tiny_bundle / MANIFEST).read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    assert migrate_bundle(tiny_bundle).migrated
