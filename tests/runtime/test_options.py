"""Runner options: threads='auto' from the cores this process may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmedge.errors import BackendError
from mmedge.runtime import options
from mmedge.runtime.options import auto_threads, resolve_threads, usable_cores
from mmedge.runtime.pipeline import Pipeline


def test_usable_cores_follow_the_affinity_mask(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(options.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cores() == 3


def test_auto_threads_share_cores_among_encoders():
    assert auto_threads(3, cores=2) == 1
    assert auto_threads(3, cores=16) == 5
    assert auto_threads(1, cores=8) == 8
    assert auto_threads(2, cores=1) == 1


def test_resolve_threads(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(options, "usable_cores", lambda: 12)
    assert resolve_threads("auto", 3) == 4
    assert resolve_threads("auto", 3, concurrent=False) == 12
    assert resolve_threads(2, 3) == 2 and resolve_threads(None, 3) is None
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(BackendError, match="threads must be"):
            resolve_threads(bad, 3)


def test_pipeline_records_its_thread_choice(tiny_bundle_pristine: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(options, "usable_cores", lambda: 7)
    with Pipeline.from_bundle(tiny_bundle_pristine, threads="auto") as pipe:
        assert pipe.threads == 7 // 3
        assert {r.threads for r in pipe.runners.values()} == {2}  # type: ignore[attr-defined]
    with Pipeline.from_bundle(tiny_bundle_pristine, threads="auto", concurrent=False) as pipe:
        assert pipe.threads == 7  # one session at a time: each gets every usable core
        assert {r.threads for r in pipe.runners.values()} == {7}  # type: ignore[attr-defined]


def test_parse_threads_for_the_cli():
    from mmedge.errors import InputError
    from mmedge.runtime.options import parse_threads

    assert parse_threads(None) is None and parse_threads("auto") == "auto" and parse_threads("AUTO") == "auto"
    assert parse_threads("3") == 3
    for bad in ("0", "-2", "two", ""):
        with pytest.raises(InputError, match="--threads must be an integer >= 1 or 'auto'"):
            parse_threads(bad)


def test_predict_cli_threads_auto(tiny_bundle_pristine: Path):
    import json

    from typer.testing import CliRunner

    from mmedge.cli.main import app

    ok = CliRunner().invoke(app, ["predict", str(tiny_bundle_pristine), "--text", "seven", "--threads", "auto",
                                  "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["label"]
    bad = CliRunner().invoke(app, ["predict", str(tiny_bundle_pristine), "--text", "seven", "--threads", "lots"])
    assert bad.exit_code == 2 and "--threads must be an integer >= 1 or 'auto'" in bad.output
