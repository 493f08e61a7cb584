"""A command loads and verifies its bundle once and passes the Bundle on (no re-load, no re-hash)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from cli_helpers import invoke

import mmedge.bundle


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts Bundle.load calls and the files the bundle module hashes (real calls, only counted)."""
    seen: Counter[str] = Counter()
    load, sha = mmedge.bundle.Bundle.load.__func__, mmedge.bundle.checked_sha256  # type: ignore[attr-defined]

    def counting_load(cls: type, *args: object, **kwargs: object) -> object:
        seen["load"] += 1
        return load(cls, *args, **kwargs)

    def counting_sha(path: str | Path, *args: object) -> str:
        seen[Path(path).name] += 1
        return sha(path, *args)

    monkeypatch.setattr(mmedge.bundle.Bundle, "load", classmethod(counting_load))
    monkeypatch.setattr(mmedge.bundle, "checked_sha256", counting_sha)
    return seen


def _hashed(seen: Counter[str]) -> dict[str, int]:
    return {name: n for name, n in seen.items() if name != "load"}


def test_eval_with_precisions_and_report(quantized_bundle: Path, tmp_path: Path, counted: Counter[str]) -> None:
    result = invoke("eval", quantized_bundle, "--precision", "fp32,fp16,int8", "--report", tmp_path / "r", "--json")
    assert result.exit_code == 0, result.output
    assert counted["load"] == 1
    hashed = _hashed(counted)
    assert hashed and set(hashed.values()) == {1}, hashed  # every artifact hashed exactly once


def test_bench(tiny_bundle: Path, tmp_path: Path, counted: Counter[str]) -> None:
    result = invoke("bench", tiny_bundle, "--backends", "onnxruntime,torch", "--iters", "2", "--warmup", "0",
                    "--no-stages", "--output", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert counted["load"] == 1 and set(_hashed(counted).values()) == {1}
