"""Each command's optional needs are checked before any work, naming the extra and the option."""

from __future__ import annotations

import pytest

from mmedge.cli import requirements
from mmedge.cli.requirements import COMMAND_NEEDS, check_needs, installed
from mmedge.errors import MissingDependencyError


@pytest.fixture()
def nothing_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every optional module looks absent (as in the runtime-only install)."""
    optional = {need.module for needs in COMMAND_NEEDS.values() for need in needs}
    monkeypatch.setattr(requirements, "installed", lambda module: module not in optional)


@pytest.mark.usefixtures("nothing_optional")
@pytest.mark.parametrize(("command", "params", "message"), [
    ("train", {}, "mmedge train: training needs torch, which is not installed: pip install 'mmedge[train]'"),
    ("export", {}, "mmedge export: exporting a trained model needs torch"),
    ("quantize", {"precision": "int8"}, "mmedge quantize: quantizing ONNX graphs needs onnx"),
    ("predict", {"backend": "torch"}, "mmedge predict: --backend torch needs torch"),
    ("eval", {"data": "m.jsonl", "report_dir": "out"}, "mmedge eval: --report (plots) needs matplotlib"),
    ("eval", {"data": None}, "mmedge eval: the built-in digits dataset (--data digits) needs sklearn"),
    ("bench", {"backends": "onnxruntime,torch", "data": "m.jsonl"}, "mmedge bench: --backends torch needs torch"),
])
def test_missing(command: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(MissingDependencyError) as info:
        check_needs(command, params)
    assert str(info.value).startswith(message) and info.value.exit_code == 3


@pytest.mark.usefixtures("nothing_optional")
@pytest.mark.parametrize(("command", "params"), [
    ("predict", {"backend": "onnxruntime"}),
    ("eval", {"data": "m.jsonl", "backend": "onnxruntime", "report_dir": None}),
    ("bench", {"backends": "onnxruntime", "data": "m.jsonl", "report": None}),
    ("bench", {"backends": "onnxruntime-cuda", "data": "m.jsonl"}),  # 'torch' must match a whole entry
    ("bench", {"suite": "suite.yaml", "backends": "onnxruntime", "data": "digits"}),
    ("migrate", {}),
])
def test_runtime_only_runs(command: str, params: dict[str, object]) -> None:
    check_needs(command, params)


def test_installed_without_importing() -> None:
    import sys

    assert installed("json") and not installed("surely_not_a_module_mmedge")
    assert "sklearn" not in sys.modules or installed("sklearn")
    sys.modules.setdefault("mmedge_blocked_for_test", None)  # type: ignore[arg-type]
    try:
        assert not installed("mmedge_blocked_for_test")
    finally:
        del sys.modules["mmedge_blocked_for_test"]


@pytest.mark.usefixtures("nothing_optional")
@pytest.mark.parametrize(("recorded", "data", "needs_sklearn"), [
    ("/data/mine.jsonl", None, False),  # trained on the user's manifest: its samples come from there
    ("/data/mine.jsonl", "digits", True),
    ("digits", None, True),
    (None, None, True),  # no data recorded: pick_samples falls back to digits
    ("digits", "m.jsonl", False),
])
def test_export_inputs_needs_sklearn_only_for_digits(tmp_path, recorded: str | None, data: str | None,
                                                     needs_sklearn: bool) -> None:
    import json

    provenance = {} if recorded is None else {"data": recorded}
    (tmp_path / "bundle.json").write_text(json.dumps({"provenance": provenance}))
    params = {"bundle": tmp_path, "data": data}
    if needs_sklearn:
        with pytest.raises(MissingDependencyError, match="needs sklearn"):
            check_needs("export-inputs", params)
    else:
        check_needs("export-inputs", params)
