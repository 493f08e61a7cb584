"""Load test: concurrent tritonclient clients against a served bundle, next to the in-process Pipeline.

Bounded on every axis: each concurrency level stops after `requests` requests or `seconds`, whichever
comes first; only a server on this machine (127.0.0.1 / localhost) is driven. The server is either
started here (`mmedge serve` in a subprocess, on free ports) or one already running is targeted.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from mmedge.errors import BackendError, InputError
from mmedge.serve.client import connect, infer
from mmedge.serve.server import ServeOptions

LOCAL_HOSTS = ("127.0.0.1", "localhost")
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to drive the server (and the in-process pipeline)."""

    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 200  # per level, at most
    seconds: float = 20.0  # per level, at most
    protocol: str = "grpc"
    warmup: int = 5

    def check(self) -> None:
        """InputError for an unbounded or nonsensical setting."""
        if not self.concurrency or not all(1 <= c <= MAX_CONCURRENCY for c in self.concurrency):
            raise InputError(f"concurrency levels must be 1..{MAX_CONCURRENCY}, got {list(self.concurrency)}")
        if self.requests < 1 or not 0 < self.seconds <= 600:
            raise InputError("requests must be at least 1 and seconds in (0, 600]")


@dataclass
class LevelResult:
    """One concurrency level of one target."""

    target: str  # "triton" | "in-process"
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float
    p99_ms: float


@dataclass
class LoadReport:
    """Every level of both targets, the batching settings and the machine's load."""

    results: list[LevelResult] = field(default_factory=list)
    batching: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    loadavg: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"results": [asdict(r) for r in self.results], "batching": self.batching,
                "settings": self.settings, "loadavg": self.loadavg}


def check_local(url: str) -> str:
    """`url` (host:port) if it names this machine; InputError otherwise (the load test drives only local servers)."""
    host, _, port = url.rpartition(":")
    if host not in LOCAL_HOSTS or not port.isdigit():
        raise InputError(f"the load test drives only a server on this machine (127.0.0.1:PORT), got {url!r}")
    return url


def drive(call: Callable[[], Any], concurrency: int, requests: int, seconds: float, target: str) -> LevelResult:
    """`concurrency` threads call `call` until `requests` calls in all are made or `seconds` pass."""
    lock, latencies, errors = threading.Lock(), [], [0]
    issued, deadline = [0], time.monotonic() + seconds

    def worker() -> None:
        while True:
            with lock:
                if issued[0] >= requests or time.monotonic() >= deadline:
                    return
                issued[0] += 1
            start = time.perf_counter()
            try:
                call()
            except Exception:  # counted: a failing request must show in the report, not stop the run
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1e3 if latencies else np.asarray([np.nan])
    return LevelResult(target, concurrency, len(latencies), errors[0], round(elapsed, 3),
                       round(len(latencies) / elapsed, 2), round(float(np.percentile(ms, 50)), 3),
                       round(float(np.percentile(ms, 99)), 3))


def free_ports(n: int) -> list[int]:
    """`n` ports the OS reports free on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def serve_command(bundle: Path, options: ServeOptions) -> list[str]:
    """The `mmedge serve --json` command line for `options` on 127.0.0.1."""
    cmd = [sys.executable, "-c", "from mmedge.cli.main import app; app()", "serve", str(bundle), "--json",
           "--address", "127.0.0.1", "--backend", options.backend, "--precision", options.precision,
           "--http-port", str(options.http_port), "--grpc-port", str(options.grpc_port),
           "--metrics-port", str(options.metrics_port), "--max-batch", str(options.max_batch),
           "--max-queue-delay-us", str(options.max_queue_delay_us), "--instances", str(options.instances),
           "--model-name", options.model_name]
    if options.threads:
        cmd += ["--threads", str(options.threads)]
    return cmd


@contextmanager
def spawned_server(bundle: Path, options: ServeOptions, timeout_s: float = 300) -> Iterator[dict[str, Any]]:
    """`mmedge serve --json` in a subprocess on 127.0.0.1; yields its ready object; SIGTERM at the end."""
    with spawned(serve_command(bundle, options), timeout_s) as ready:
        yield ready


@contextmanager
def spawned(cmd: list[str], timeout_s: float) -> Iterator[dict[str, Any]]:
    """Run `cmd` (a server printing a JSON ready object); yield that object; SIGTERM at the end.

    stdout is read on a thread, so a silent child cannot outlast `timeout_s`; stderr goes to a file
    whose tail explains a failed start.
    """
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=dict(os.environ))
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        try:
            yield _ready_object(proc, lines, timeout_s, err)
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    """Every line of `stream` into `lines`, then None (end of stream); keeps the pipe from filling up."""
    if stream is not None:
        for line in stream:
            lines.put(line)
    lines.put(None)


def stderr_tail(err: IO[str], n: int = 5, limit: int = 1000) -> str:
    """The last `n` non-empty lines of the child's stderr file, on one line ('' when it wrote nothing)."""
    err.flush()
    err.seek(0)
    tail = " | ".join(line.strip() for line in err.read().splitlines() if line.strip())
    tail = " | ".join(tail.split(" | ")[-n:]) if tail else ""
    return f"; its stderr ends: {tail[-limit:]}" if tail else ""


def _ready_object(proc: subprocess.Popen[str], lines: queue.Queue[str | None], timeout_s: float,
                  err: IO[str]) -> dict[str, Any]:
    """The server's --json ready object (BackendError, with its stderr tail, if it exits first or takes too long)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            raise BackendError(f"mmedge serve exited with code {proc.wait(10)} before it was ready"
                               f"{stderr_tail(err)}")
        got.append(line)
        if line.startswith("}"):
            data: dict[str, Any] = json.loads("".join(got))
            if "error" in data:
                raise BackendError(f"mmedge serve failed: {data['error']}")
            return data
    raise BackendError(f"mmedge serve was not ready within {timeout_s:g} s{stderr_tail(err)}")


def run_load(url: str, model: str, row: dict[str, bytes | str | None], settings: LoadSettings,
             pipeline_call: Callable[[], Any] | None = None) -> list[LevelResult]:
    """Every concurrency level against the server, then (if given) against the in-process pipeline."""
    settings.check()
    check_local(url)
    clients = threading.local()

    def served() -> None:
        if not hasattr(clients, "c"):  # one client per thread: tritonclient clients are not shared
            clients.c = connect(url, settings.protocol)
        infer(clients.c, settings.protocol, [row], model=model)

    for _ in range(settings.warmup):
        served()
    results = [drive(served, c, settings.requests, settings.seconds, "triton") for c in settings.concurrency]
    if pipeline_call is not None:
        for _ in range(settings.warmup):
            pipeline_call()
        results += [drive(pipeline_call, c, settings.requests, settings.seconds, "in-process")
                    for c in settings.concurrency]
    return results


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def request_row(text: str | None, image: Path | None, audio: Path | None) -> dict[str, bytes | str | None]:
    """The request every client sends: the text and the raw bytes of the image and audio files."""
    if text is None and image is None and audio is None:
        raise InputError("give at least one of text, image and audio for the load test's request")
    return {"text": text, "image": image.read_bytes() if image else None,
            "audio": audio.read_bytes() if audio else None}


def measure(bundle: Path, row_files: tuple[str | None, Path | None, Path | None], options: ServeOptions,
            settings: LoadSettings, url: str | None = None, model: str = "mmedge") -> LoadReport:
    """Drive the server (started here on free local ports, or the running one at `url`), then the Pipeline.

    The in-process Pipeline runs the same bundle, backend and precision in this process, on the same files.
    """
    from mmedge.runtime.pipeline import Pipeline

    settings.check()
    text, image, audio = row_files
    row = request_row(text, image, audio)
    report = LoadReport(batching=options.batching(), settings=asdict(settings), loadavg={"start": loadavg()})
    with Pipeline.from_bundle(bundle, backend=options.backend, precision=options.precision,
                              threads=options.threads) as pipe:
        def in_process() -> None:
            pipe.predict(text=text, image=image, audio=audio)

        if url is not None:
            report.batching = {"server": "already running (its settings are its own)", "url": check_local(url)}
            report.results = run_load(url, model, row, settings, in_process)
        else:
            http, grpc, metrics = free_ports(3)
            opts = ServeOptions(**{**asdict(options), "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
                                   "address": "127.0.0.1"})
            with spawned_server(bundle, opts) as ready:
                port = grpc if settings.protocol == "grpc" else http
                report.results = run_load(f"127.0.0.1:{port}", str(ready["model"]), row, settings, in_process)
    report.loadavg["end"] = loadavg()
    return report
