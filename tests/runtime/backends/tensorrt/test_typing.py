"""The TensorRT code type-checks against tensorrt-stubs, and misuse of the TRT 10 API fails.

`tensorrt-stubs` (10.13) cannot be used by mypy as installed: its `tensorrt/` folder has no
`py.typed` (so mypy treats `tensorrt` as untyped → Any) and `tensorrt_bindings/tensorrt.pyi`
has five syntax errors (parameters named `in`, a non-default parameter after defaults). This
test copies the stubs, repairs those lines, and runs mypy with them on `mmedge/runtime/backends/tensorrt`.

Also usable from a Makefile: `python tests/runtime/backends/tensorrt/test_typing.py DIR` writes the
repaired stubs to DIR, for `mypy_path = DIR`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
MISUSE = """
import tensorrt as trt

logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
config = builder.create_builder_config()
reveal_type(builder)
builder.build_engine(network, config)          # removed in TensorRT 10
config.max_workspace_size = 1 << 30            # removed in TensorRT 10
engine = trt.Runtime(logger).deserialize_cuda_engine(b"")
context = engine.create_execution_context()
context.execute_async_v2([], 0)                # removed in TensorRT 10
engine.get_binding_index("x")                  # removed in TensorRT 10
"""


def stubs_root() -> Path | None:
    """site-packages folder holding tensorrt-stubs' `tensorrt/` and `tensorrt_bindings/`, if installed."""
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent.parent
    return root if (root / "tensorrt_bindings" / "tensorrt.pyi").is_file() else None


def write_fixed_stubs(target: Path) -> Path:
    """Copy tensorrt-stubs into `target` with its syntax errors repaired; return `target`."""
    source = stubs_root()
    if source is None:
        raise FileNotFoundError("tensorrt-stubs is not installed (pip install tensorrt-stubs --no-deps)")
    for package in ("tensorrt", "tensorrt_bindings"):
        (target / package).mkdir(parents=True, exist_ok=True)
        for stub in (source / package).glob("*.pyi"):
            text = stub.read_text()
            text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", text)  # `in` is a keyword
            text = text.replace(
                "channel_axis: int) -> IScaleLayer", "channel_axis: int = ...) -> IScaleLayer"
            )
            ast.parse(text, filename=str(stub))  # fail loudly if a new stub release breaks differently
            (target / package / stub.name).write_text(text)
    return target


def _mypy(stubs: Path, tmp_path: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\ncheck_untyped_defs = True\n"
        f"mypy_path = {stubs}\n\n[mypy-tensorrt.*,tensorrt_bindings.*]\nignore_errors = True\n"
    )
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(config),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-error-summary",
        "--show-error-codes",
        *paths,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fixed_stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    if stubs_root() is None:
        pytest.skip("tensorrt-stubs is not installed")
    return write_fixed_stubs(tmp_path_factory.mktemp("trt_stubs"))


def test_tensorrt_modules_type_check_against_the_stubs(fixed_stubs: Path, tmp_path: Path) -> None:
    result = _mypy(
        fixed_stubs, tmp_path, "mmedge/runtime/backends/tensorrt", "mmedge/runtime/cuda",
        "mmedge/runtime/backends/onnxruntime_gpu", "mmedge/cli/build.py",
        "tests/standin_trt.py", "tests/standin_cuda.py",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_removed_tensorrt_apis_fail_type_checking(fixed_stubs: Path, tmp_path: Path) -> None:
    snippet = tmp_path / "misuse.py"
    snippet.write_text(MISUSE)
    result = _mypy(fixed_stubs, tmp_path, str(snippet))
    out = result.stdout
    assert 'Revealed type is "tensorrt_bindings.tensorrt.Builder"' in out, out
    for removed in ("build_engine", "max_workspace_size", "execute_async_v2", "get_binding_index"):
        assert re.search(rf'has no attribute "{removed}"', out), (removed, out)


if __name__ == "__main__":
    print(write_fixed_stubs(Path(sys.argv[1] if len(sys.argv) > 1 else ".typings")))
