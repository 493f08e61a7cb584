"""Cold start: import → `Pipeline.from_bundle` → first answer, in a fresh process, with its peak RSS.

A device that boots into inference pays this once per start. Each run is a new Python process with
torch import blocked (the runtime-only install), timing from its first statement: `import mmedge`,
loading the bundle (hash checks, sessions) and the first prediction on a real sample (files decoded
as a device would). The first run starts with an empty ONNX Runtime graph cache (a first boot),
later runs find it filled (every boot after), and the hash records of the files already checked.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from mmedge.errors import MmedgeError
from mmedge.hash_records import RACY_NS

log = logging.getLogger(__name__)

SCRIPT = r"""
import time
t0 = time.perf_counter()
import sys, json, resource

class BlockTorch:  # the runtime-only install has no torch
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not part of the runtime install")

sys.meta_path.insert(0, BlockTorch())
from mmedge.runtime.pipeline import Pipeline
t1 = time.perf_counter()
args = json.loads(sys.argv[1])
pipe = Pipeline.from_bundle(args["bundle"], backend=args["backend"], precision=args["precision"],
                            threads=args["threads"])
t2 = time.perf_counter()
answer = pipe.predict(text=args["text"], image=args["image"], audio=args["audio"])
t3 = time.perf_counter()

def peak_rss_mb():  # VmHWM: this program's own peak (ru_maxrss may carry the parent's from before exec)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

print(json.dumps({"import_ms": 1e3 * (t1 - t0), "load_ms": 1e3 * (t2 - t1), "first_answer_ms": 1e3 * (t3 - t2),
                  "total_ms": 1e3 * (t3 - t0), "peak_rss_mb": peak_rss_mb(),
                  "label": answer.label}))
"""


def sample_files(folder: Path, modalities: list[str], data: str = "digits", split: str = "test",
                 split_seed: int = 0) -> dict[str, Any]:
    """One real sample of `data` as a device would get it: text, a PNG file, a WAV file."""
    import soundfile as sf
    from PIL import Image

    from mmedge.bench.workload import load_samples

    s = load_samples(data, split, modalities, 1, 0, split_seed=split_seed)[0]
    out: dict[str, Any] = {"text": s.text if "text" in modalities else None, "image": None, "audio": None}
    if "image" in modalities and s.image is not None:
        if isinstance(s.image, (str, Path)):  # a manifest's own file: what a device would get
            out["image"] = str(s.image)
        else:
            image = s.image if isinstance(s.image, Image.Image) else Image.fromarray(np.asarray(s.image))
            image.save(folder / "sample.png")
            out["image"] = str(folder / "sample.png")
    if "audio" in modalities and s.audio is not None:
        if isinstance(s.audio, (str, Path)):
            out["audio"] = str(s.audio)
        else:
            sf.write(folder / "sample.wav", s.audio, int(s.sample_rate or 8000))
            out["audio"] = str(folder / "sample.wav")
    return out


def one_run(args: dict[str, Any], env: dict[str, str], timeout: float = 300.0) -> dict[str, Any]:
    """One fresh process: its timings and peak RSS (MmedgeError with its last stderr line on failure)."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MmedgeError(f"cold-start run failed: {last}")
    lines = proc.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError) as exc:  # exit 0 without the timings line: say what it said
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "nothing on stderr"
        got = "no output" if not lines else f"not timings: {lines[-1][:100]!r}"
        raise MmedgeError(f"cold-start run printed {got} (stderr: {tail})") from exc


def measure_cold_start(bundle: Path, precision: str, modalities: list[str], backend: str = "onnxruntime",
                       threads: int | str | None = 1, runs: int = 5, data: str = "digits", split: str = "test",
                       split_seed: int = 0) -> dict[str, Any]:
    """First-boot and warm (median) cold start of `bundle` at `precision`, each run a fresh process."""
    with tempfile.TemporaryDirectory(prefix="mmedge-coldstart-") as tmp:
        folder = Path(tmp)
        args = {"bundle": str(bundle), "backend": backend, "precision": precision, "threads": threads,
                **sample_files(folder, modalities, data, split, split_seed)}
        # PYTHONDONTWRITEBYTECODE dropped: an installed package has its .pyc (pip compiles them), so every
        # boot after the first imports bytecode rather than compiling mmedge's sources again
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "MMEDGE_CACHE_DIR": str(folder / "cache"), "MMEDGE_ORT_GRAPH_CACHE": "1"}
        results = [one_run(args, env)]
        # the next boot of a device comes seconds to days later; hash records vouch for a file only once
        # it has been unchanged that long (mmedge.hash_records.RACY_NS), which the graphs just cached were not
        time.sleep(RACY_NS / 1e9)
        results += [one_run(args, env) for _ in range(max(1, runs - 1))]
    warm = results[1:]
    record = {"backend": backend, "precision": precision, "threads": threads, "runs": results,
              "first_boot_ms": results[0]["total_ms"], "first_boot_rss_mb": results[0]["peak_rss_mb"],
              "peak_rss_mb": max(r["peak_rss_mb"] for r in warm)}
    for key in ("import_ms", "load_ms", "first_answer_ms", "total_ms"):
        record[key] = median(r[key] for r in warm)
    return record


COLUMNS = ("config", "import ms", "load ms", "first answer ms", "total ms", "peak RSS MiB", "first boot ms")


def cold_start_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows: medians of the warm runs, and the first boot (empty graph cache)."""
    return [[f"{r['backend']}/{r['precision']}", f"{r['import_ms']:.0f}", f"{r['load_ms']:.0f}",
             f"{r['first_answer_ms']:.0f}", f"{r['total_ms']:.0f}", f"{r['peak_rss_mb']:.0f}",
             f"{r['first_boot_ms']:.0f}"] for r in records if "total_ms" in r]


def cold_start_lines(env: dict[str, Any]) -> list[str]:
    """The Markdown section of a report's cold-start records (none: no lines)."""
    runs = env.get("bench_runs") or [env.get("bench") or {}]
    # each record named by its bundle (a suite measures several): edge/onnxruntime/int8
    records = [{**r, "backend": f"{run['bundle']}/{r['backend']}" if run.get("bundle") else r["backend"]}
               for run in runs for r in run.get("cold_start") or []]
    rows = cold_start_rows(records)
    failed = [f"- {r['backend']}/{r['precision']}: {r['error']}" for r in records if "error" in r]
    if not rows and not failed:
        return []
    head = ["", "## Cold start (fresh process: import → load → first answer)", "",
            "Median of warm runs (ONNX Runtime graph cache filled); `first boot`: the first run, cache empty. "
            "torch blocked (the runtime-only install); one real sample (text, PNG, WAV).", "",
            "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return head + ["| " + " | ".join(row) + " |" for row in rows] + failed


def cold_starts(bundle: Path, precisions: list[str], modalities: list[str], threads: int | str | None,
                runs: int = 5, data: str = "digits", split: str = "test", split_seed: int = 0) -> list[dict[str, Any]]:
    """Cold-start records per precision (the sample from the bench's `data`/`split`); a failure is a record."""
    out = []
    for precision in precisions:
        try:
            out.append(measure_cold_start(bundle, precision, modalities, threads=threads, runs=runs, data=data,
                                          split=split, split_seed=split_seed))
        except (MmedgeError, subprocess.TimeoutExpired, ValueError) as exc:
            log.warning("cold start %s failed: %s", precision, exc)
            out.append({"backend": "onnxruntime", "precision": precision, "error": str(exc)[:300]})
    return out
