"""The load-test harness: bounded in count and time, local servers only (the live run: test_client.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmedge.errors import InputError
from mmedge.serve.loadtest import LoadSettings, check_local, drive, request_row


def test_count_bound_and_concurrency() -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def call() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    result = drive(call, concurrency=4, requests=40, seconds=30, target="x")
    assert (result.requests, result.errors, result.concurrency) == (40, 0, 4)
    assert peak[0] == 4 and result.throughput > 0 and 10 <= result.p50_ms <= result.p99_ms


def test_time_bound_and_errors_are_counted() -> None:
    calls = [0]

    def call() -> None:
        calls[0] += 1
        if calls[0] % 2:
            raise RuntimeError("server said no")
        time.sleep(0.05)

    result = drive(call, concurrency=2, requests=10_000, seconds=0.5, target="x")
    assert result.seconds < 2 and result.errors > 0 and result.requests + result.errors == calls[0] < 10_000


@pytest.mark.parametrize("url", ["10.0.0.5:8001", "example.com:8000", "127.0.0.1", "0.0.0.0:8001"])
def test_only_local_servers(url: str) -> None:
    with pytest.raises(InputError, match="only a server on this machine"):
        check_local(url)
    assert check_local("127.0.0.1:8001") == "127.0.0.1:8001"


def test_settings_and_rows(media_files: dict[str, Path]) -> None:
    for bad in (LoadSettings(concurrency=(0,)), LoadSettings(concurrency=(65,)), LoadSettings(seconds=0),
                LoadSettings(requests=0)):
        with pytest.raises(InputError):
            bad.check()
    with pytest.raises(InputError, match="at least one"):
        request_row(None, None, None)
    assert request_row("a", media_files["image"], None) == {"text": "a", "image": media_files["image"].read_bytes(),
                                                            "audio": None}


def test_a_silent_server_times_out_and_a_failing_one_shows_its_stderr() -> None:
    """The ready wait has a real deadline (a child printing nothing cannot hang it) and errors carry stderr."""
    import sys

    from mmedge.errors import BackendError
    from mmedge.serve.loadtest import spawned

    started = time.monotonic()
    silent = [sys.executable, "-c", "import sys, time; sys.stderr.write('loading weights\\n'); sys.stderr.flush(); "
              "time.sleep(60)"]
    with pytest.raises(BackendError, match="not ready within 1 s; its stderr ends: loading weights"), \
            spawned(silent, timeout_s=1):
        pass
    assert time.monotonic() - started < 30
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('Traceback ...\\nOSError: port 8000 in use\\n'); "
               "sys.exit(3)"]
    with pytest.raises(BackendError, match=r"exited with code 3 .*Traceback ... \| OSError: port 8000 in use"), \
            spawned(failing, timeout_s=30):
        pass
    ready = [sys.executable, "-c", "print('{'); print('\"ready\": true'); print('}')"]
    with spawned(ready, timeout_s=30) as obj:
        assert obj == {"ready": True}


def test_the_spawned_server_gets_the_model_name() -> None:
    from mmedge.serve.loadtest import serve_command
    from mmedge.serve.server import ServeOptions

    cmd = serve_command(Path("b"), ServeOptions(model_name="digits"))
    assert cmd[cmd.index("--model-name") + 1] == "digits"
