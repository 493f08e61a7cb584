"""`mmedge serve` end to end: a real Triton (subprocess), tritonclient over HTTP and gRPC, vs Pipeline.predict."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="the serve extra (pip install 'mmedge[serve]') is not installed")
pytest.importorskip("tritonclient.grpc", reason="the serve extra (pip install 'mmedge[serve]') is not installed")

from mmedge.runtime.pipeline import Pipeline
from mmedge.serve.client import connect, infer

MODALITIES = ("text", "image", "audio")
SUBSETS = [c for n in (1, 2, 3) for c in itertools.combinations(MODALITIES, n)]
START_S, STOP_S = 240, 30  # startup may retry PyTriton's handshake (see mmedge.serve.server)


class Server:
    """A running `mmedge serve` process and its ports."""

    def __init__(self, proc: subprocess.Popen[str], ports: list[int]) -> None:
        self.proc, (self.http, self.grpc, self.metrics) = proc, ports

    def url(self, protocol: str) -> str:
        return f"127.0.0.1:{self.http if protocol == 'http' else self.grpc}"


@pytest.fixture(scope="module")
def server(tiny_bundle_pristine: Path, ports: list[int],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per module: 2 instances, dynamic batching; stopped (if a test has not) at the end."""
    cmd = [sys.executable, "-c", "from mmedge.cli.main import app; app()", "serve", str(tiny_bundle_pristine),
           "--json", "--instances", "2", "--max-batch", "8", "--max-queue-delay-us", "2000",
           "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # the command must fix it itself
    log_path = tmp_path_factory.mktemp("serve") / "server.log"  # Triton's own log, for a failure
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    srv = Server(proc, ports)
    try:
        _wait_ready(proc, log_path)
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def _wait_ready(proc: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    """Read stdout until the --json ready object is complete (the server prints it once the model is ready)."""
    assert proc.stdout is not None
    lines, deadline = [], time.monotonic() + START_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"mmedge serve exited with {proc.wait(10)} before it was ready:\n{log.read_text()[-3000:]}")
        lines.append(line)
        if line.startswith("}"):
            return json.loads("".join(lines))  # type: ignore[no-any-return]
    pytest.fail("mmedge serve was not ready in time")


@pytest.fixture(scope="module")
def pipe(tiny_bundle_pristine: Path) -> Iterator[Pipeline]:
    with Pipeline.from_bundle(tiny_bundle_pristine) as p:
        yield p


def _row(media: dict[str, Path], subset: tuple[str, ...]) -> dict[str, bytes | str | None]:
    return {"text": "seven" if "text" in subset else None,
            "image": media["image"].read_bytes() if "image" in subset else None,
            "audio": media["audio"].read_bytes() if "audio" in subset else None}


def _expected(pipe: Pipeline, media: dict[str, Path], subset: tuple[str, ...]) -> Any:
    return pipe.predict(text="seven" if "text" in subset else None, image=media["image"] if "image" in subset else None,
                        audio=media["audio"] if "audio" in subset else None)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_every_subset_matches_pipeline(server: Server, pipe: Pipeline, media_files: dict[str, Path],
                                       protocol: str) -> None:
    client = connect(server.url(protocol), protocol)
    for subset in SUBSETS:
        [answer] = infer(client, protocol, [_row(media_files, subset)])
        want = _expected(pipe, media_files, subset)
        assert (answer.label, answer.index, answer.error) == (want.label, want.index, ""), subset
        np.testing.assert_allclose(answer.probabilities, list(want.probabilities.values()), atol=1e-5, rtol=0)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_rows_with_different_subsets_in_one_request(server: Server, pipe: Pipeline, media_files: dict[str, Path],
                                                    protocol: str) -> None:
    """Absent = an empty element: one request mixes rows with text only, image+audio, and all three."""
    subsets = [("text",), ("image", "audio"), MODALITIES]
    answers = infer(connect(server.url(protocol), protocol), protocol, [_row(media_files, s) for s in subsets],
                    send_absent=True)
    for answer, subset in zip(answers, subsets, strict=True):
        want = _expected(pipe, media_files, subset)
        assert answer.label == want.label
        np.testing.assert_allclose(answer.probabilities, list(want.probabilities.values()), atol=1e-5, rtol=0)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_inputs_get_a_clear_error(server: Server, media_files: dict[str, Path], protocol: str) -> None:
    from tritonclient.utils import InferenceServerException

    client = connect(server.url(protocol), protocol)
    cases = [({"image": media_files["bad"].read_bytes()}, "row 0: image is not a readable image file"),
             ({"text": "", "image": b"", "audio": b""}, "all modalities are absent"),
             ({"text": b"\xff\xfe"}, "text is not valid UTF-8")]
    for row, message in cases:
        with pytest.raises(InferenceServerException, match=message):
            infer(client, protocol, [row], send_absent=True)  # type: ignore[list-item]
    assert infer(client, protocol, [{"text": "seven"}])[0].error == ""  # the server still answers


def test_a_bad_request_never_fails_good_ones_batched_with_it(server: Server, pipe: Pipeline) -> None:
    """Concurrent good and bad requests: every good one answers right; the bad one errors either way."""
    from concurrent.futures import ThreadPoolExecutor

    from tritonclient.utils import InferenceServerException

    want = pipe.predict(text="seven")

    def call(i: int) -> Any:
        client = connect(server.url("grpc"), "grpc")
        try:
            return infer(client, "grpc", [{"image": b"junk"} if i == 5 else {"text": "seven"}])[0]
        except InferenceServerException as exc:
            return exc

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(call, range(12)))
    bad = answers.pop(5)
    assert all(not isinstance(a, Exception) and (a.label, a.error) == (want.label, "") for a in answers), answers
    message = str(bad) if isinstance(bad, Exception) else bad.error
    assert "image is not a readable image file" in message


def test_health_and_metrics(server: Server) -> None:
    client = connect(server.url("http"), "http")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mmedge")
    config = client.get_model_config("mmedge")
    assert config["max_batch_size"] == 8 and config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert len(config["instance_group"]) == 1 and config["instance_group"][0]["count"] == 2
    infer(client, "http", [{"text": "seven"}])
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    assert 'nv_inference_request_success{model="mmedge"' in metrics


def test_load_harness_against_the_server(server: Server, media_files: dict[str, Path]) -> None:
    from mmedge.serve.loadtest import LoadSettings, request_row, run_load

    row = request_row("seven", media_files["image"], media_files["audio"])
    results = run_load(server.url("grpc"), "mmedge", row, LoadSettings(concurrency=(1, 4), requests=12, warmup=1))
    assert [(r.target, r.concurrency, r.requests, r.errors) for r in results] == [("triton", 1, 12, 0),
                                                                                 ("triton", 4, 12, 0)]


def test_sigterm_stops_cleanly(server: Server) -> None:
    """Last in the module: SIGTERM → exit code 0 in bounded time, and the ports are released."""
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(STOP_S) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.http}/v2/health/live", timeout=5)
