"""Bundle updates are transactions: writers SIGKILLed at watched moments, concurrent writers, readers during writes.

Every writer is the real CLI in a subprocess. The moment to kill is found by watching the bundle folder
(a temp file appears, a new artifact exists while bundle.json is unchanged, bundle.json's temp appears,
bundle.json was replaced), never by sleeping; the product has no test hooks.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke

from mmedge.bundle import MANIFEST, Bundle
from mmedge.transaction import LOCK_TIMEOUT_ENV, is_temp, referenced

CLI = [sys.executable, "-c", "from mmedge.cli.main import app; app()"]
INT8 = ["--precision", "int8", "--rounding", "nearest", "--max-float-macs", "0", "--components", "text,image",
        "--threads", "1"]
NEW_ART = re.compile(r"^(text|image)\.int8\.[0-9a-f]{12}\.onnx$")
Trigger = Callable[[], bool]


# ---- helpers ---------------------------------------------------------------------------------
def start(*args: object) -> subprocess.Popen[bytes]:
    """The real CLI in a subprocess."""
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def names(folder: Path) -> set[str]:
    """Names in a folder (nothing if it is gone)."""
    try:
        return {p.name for p in folder.iterdir()}
    except OSError:
        return set()


def manifest_id(bundle: Path) -> tuple[int, int]:
    """Identity of the bundle.json in place (an atomic replace gives a new inode)."""
    st = (bundle / MANIFEST).stat()
    return st.st_ino, st.st_mtime_ns


def kill_when(procs: dict[str, tuple[subprocess.Popen[bytes], Trigger]], limit: float = 240.0) -> dict[str, bool]:
    """Poll every trigger; SIGKILL a writer the moment its trigger fires. {case: killed (False: it finished first)}."""
    killed: dict[str, bool] = {}
    deadline = time.monotonic() + limit
    while len(killed) < len(procs):
        for case, (proc, trigger) in procs.items():
            if case in killed:
                continue
            fired = trigger()
            if fired or proc.poll() is not None:
                if fired and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed[case] = fired and proc.returncode == -signal.SIGKILL
        if time.monotonic() > deadline:
            for proc, _ in procs.values():
                proc.kill()
            pytest.fail(f"writers still running after {limit:g} s")
    return killed


def predict(bundle: Path | Bundle, precision: str) -> np.ndarray:
    """Logits of a few test samples through the Pipeline."""
    from mmedge.data.manifest import resolve_dataset
    from mmedge.runtime.pipeline import Pipeline

    samples = resolve_dataset("digits", "test").samples[:6]
    with Pipeline.from_bundle(bundle, precision=precision, threads=1, concurrent=False) as pipe:
        return pipe.predict_batch(samples).logits


def temps(bundle: Path) -> list[str]:
    """Temp files in the bundle and staging folders next to it."""
    found = [str(p) for p in bundle.rglob("*") if is_temp(p.name)]
    return found + [str(p) for p in bundle.parent.glob(f".{bundle.name}.*-*")]


def managed(bundle: Path) -> set[str]:
    """Files writers create (top-level ONNX, engines)."""
    files = {p.name for p in bundle.glob("*.onnx")}
    return files | {f"engines/{p.name}" for p in (bundle / "engines").glob("*")}


def check_loads(bundle: Path, before_json: bytes, before: np.ndarray, precision: str) -> str:
    """The bundle loads and verifies; unchanged bundle.json → identical predictions. Which state it is in."""
    loaded = Bundle.load(bundle)
    loaded.verify()
    got = predict(loaded, precision)
    if (bundle / MANIFEST).read_bytes() == before_json:
        np.testing.assert_array_equal(got, before)
        return "old"
    old = json.loads(before_json)["components"]
    for comp in ("text", "image"):  # committed: every new artifact is in, none of the old ones is referenced
        assert loaded.artifact(comp, "int8").file != old[comp]["artifacts"]["int8"]["file"]
    assert np.isfinite(got).all()
    return "new"


# ---- kills -----------------------------------------------------------------------------------
def test_killed_quantize_leaves_a_loadable_bundle(quantized_bundle_pristine: Path, tmp_path: Path):
    triggers: dict[str, Callable[[Path, set[str], tuple[int, int]], bool]] = {
        "artifact temp written": lambda b, n0, m0: any(is_temp(n) and ".int8.onnx." in n for n in names(b)),
        "new artifact, bundle.json unchanged": lambda b, n0, m0: any(
            NEW_ART.match(n) for n in names(b) - n0) and manifest_id(b) == m0,
        "bundle.json temp written": lambda b, n0, m0: any(n.startswith(f".{MANIFEST}.") for n in names(b)),
        "bundle.json replaced": lambda b, n0, m0: manifest_id(b) != m0,
    }
    before_json = (quantized_bundle_pristine / MANIFEST).read_bytes()
    before = predict(quantized_bundle_pristine, "int8")
    bundles, procs = {}, {}
    for i, (case, fire) in enumerate(triggers.items()):
        bundle = shutil.copytree(quantized_bundle_pristine, tmp_path / f"b{i}")
        bundles[case] = bundle
        n0, m0 = names(bundle), manifest_id(bundle)
        procs[case] = (start("quantize", bundle, *INT8, "--samples", "8"),
                       lambda fire=fire, b=bundle, n0=n0, m0=m0: fire(b, n0, m0))
    reader = Reader(bundles["bundle.json replaced"], "int8")  # a reader on the bundle that commits
    with reader:
        killed = kill_when(procs)
    assert reader.errors == [] and reader.loops > 0
    assert killed["artifact temp written"] and killed["new artifact, bundle.json unchanged"], killed
    for case, bundle in bundles.items():
        state = check_loads(bundle, before_json, before, "int8")
        if case in ("artifact temp written", "new artifact, bundle.json unchanged"):
            assert state == "old", case
        orphans = {n for n in names(bundle) if NEW_ART.match(n)} - referenced(Bundle.load(bundle))
        prior = referenced(Bundle.load(bundle))
        rerun = invoke("quantize", bundle, *INT8, "--samples", "24")  # other data: mostly other names
        assert rerun.exit_code == 0, rerun.output
        assert temps(bundle) == [], case
        now = Bundle.load(bundle)
        now.verify()
        assert managed(bundle) <= referenced(now) | prior, case  # only the previous generation is kept
        assert not (orphans - referenced(now)) & names(bundle), case  # the killed run's uncommitted files are gone
        assert now.artifact("image", "int8").settings["calibration"]["samples"] == 24
    print(f"kills landed: {killed}")


# ---- concurrency -----------------------------------------------------------------------------
class Reader:
    """A thread looping Bundle.load + a Pipeline prediction; records every failure."""

    def __init__(self, bundle: Path, precision: str) -> None:
        self.bundle, self.precision = bundle, precision
        self.errors: list[str] = []
        self.loops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                predict(Bundle.load(self.bundle), self.precision)
                self.loops += 1
            except Exception as exc:  # every failure is the finding
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_concurrent_writers_serialize(tiny_bundle: Path):
    before = predict(tiny_bundle, "fp32")
    with Reader(tiny_bundle, "fp32") as reader:
        fp16 = start("quantize", tiny_bundle, "--precision", "fp16", "--threads", "1")
        int8 = start("quantize", tiny_bundle, *INT8, "--samples", "8")
        for proc in (fp16, int8):
            assert proc.wait(timeout=240) == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert reader.errors == [] and reader.loops > 0
    bundle = Bundle.load(tiny_bundle)
    bundle.verify()
    assert all("fp16" in c.artifacts for c in bundle.components.values())  # neither writer lost the other's entries
    assert all("int8" in bundle.components[c].artifacts for c in ("text", "image"))
    assert managed(tiny_bundle) <= referenced(bundle) and temps(tiny_bundle) == []  # no unreferenced files
    np.testing.assert_array_equal(predict(bundle, "fp32"), before)


def test_second_writer_waits_then_fails_with_one_line(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    hold = ("import sys, time\nfrom mmedge.transaction import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n")
    before = (tiny_bundle / MANIFEST).read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tiny_bundle), "60"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.3")
        result = invoke("quantize", tiny_bundle, "--precision", "fp16", "--components", "text")
        assert_one_line_error(result, f"another mmedge process is writing this bundle (pid {holder.pid}); "
                                      "wait for it or remove the stale lock")
        assert (tiny_bundle / MANIFEST).read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    short = subprocess.Popen([sys.executable, "-c", hold, str(tiny_bundle), "1.0"], stdout=subprocess.PIPE)
    assert short.stdout is not None and short.stdout.readline().strip() == b"held"
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "60")
    result = invoke("quantize", tiny_bundle, "--precision", "fp16", "--components", "text")  # waits, then runs
    assert short.wait(timeout=30) == 0
    assert result.exit_code == 0, result.output
    assert "fp16" in Bundle.load(tiny_bundle).components["text"].artifacts


# ---- re-export -------------------------------------------------------------------------------
def test_killed_reexport_keeps_the_old_bundle(tiny_run: Path, tiny_bundle: Path):
    before_json = (tiny_bundle / MANIFEST).read_bytes()
    before = predict(tiny_bundle, "fp32")

    def staged_onnx() -> bool:
        return any(list(p.glob("*.onnx")) for p in tiny_bundle.parent.glob(f".{tiny_bundle.name}.new-*"))

    killed = kill_when({"export": (start("export", tiny_run, "--out", tiny_bundle, "--samples", "8"), staged_onnx)})
    assert killed["export"]
    assert check_loads(tiny_bundle, before_json, before, "fp32") == "old"
    rerun = invoke("export", tiny_run, "--out", tiny_bundle, "--samples", "8")
    assert rerun.exit_code == 0, rerun.output
    assert temps(tiny_bundle) == []  # the killed run's staging folder is gone too
    Bundle.load(tiny_bundle).verify()
    np.testing.assert_allclose(predict(tiny_bundle, "fp32"), before, atol=1e-5)


def test_export_refuses_to_replace_a_folder_that_is_not_a_bundle(tiny_run: Path, tmp_path: Path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert_one_line_error(invoke("export", tiny_run, "--out", tmp_path), "exists and is not a bundle")
    assert keep.read_text() == "mine"
