"""Verdicts of `mmedge doctor`: pure functions from an Environment to checks, each with the command that fixes it.

Statuses: ok; missing (an optional piece is not installed: shown with its fix, exit code unaffected);
warn (works, but results will suffer); error (something installed does not work or the pieces do not fit
together — e.g. cuda-python 13 on a CUDA 12 driver); n/a (does not apply to this machine).
Exit code: 1 when any check is an error, else 0 (docs/outside_tools.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mmedge.doctor.environment import Environment

STATUSES = ("ok", "missing", "warn", "error", "n/a")
EXTRA_ORDER = ("train", "serve", "gpu", "pycuda", "openvino", "dev")
ENABLES = {
    "train": "train, export, quantize, demo, eval --report, the torch backend",
    "serve": "mmedge serve, export-triton",
    "gpu": "build, the tensorrt / onnxruntime-cuda / onnxruntime-trt backends",
    "pycuda": "pycuda as the CUDA API (MMEDGE_CUDA_API=pycuda), an alternative to cuda-python",
    "openvino": "the openvino backend",
    "dev": "the test suite, linters, Polygraphy",
}
# L4T release prefix -> JetPack (most specific first). mmedge needs TensorRT 10: JetPack 6.1 or newer.
JETPACK = (("R38.2", "7.0"), ("R36.4.4", "6.2.1"), ("R36.4.3", "6.2"), ("R36.4", "6.1"), ("R36.3", "6.0"),
           ("R36.2", "6.0 DP"), ("R35", "5.1"), ("R34", "5.0"), ("R32", "4.x"))
MIN_JETPACK_L4T = (36, 4)
ALTERNATIVES = {"onnxruntime": ("onnxruntime-gpu",)}  # distributions that install the same module
JETSON_TRT_FIX = "sudo apt install python3-libnvinfer (JetPack's TensorRT; venv with --system-site-packages)"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, its status, what was found, the one command that fixes it."""

    area: str
    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """Plain JSON dict."""
        return {"area": self.area, "name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def major(version: str | None) -> int | None:
    """Leading integer of a version ("12.6" -> 12), None if unknown."""
    head = (version or "").split(".")[0]
    return int(head) if head.isdigit() else None


def jetpack(l4t: str | None) -> str | None:
    """The JetPack release of an L4T release ("R36.4.0" -> "6.1"), None if unknown."""
    return next((jp for prefix, jp in JETPACK if l4t and (l4t == prefix or l4t.startswith(prefix + "."))), None)


def _has_gpu(env: Environment) -> bool:
    return bool(env.gpus) or env.is_jetson


def _cuda_python(env: Environment) -> str | None:
    return env.version("cuda-bindings") or env.version("cuda-python")


def check_python(env: Environment) -> list[Check]:
    """Python 3.10 or newer."""
    ok = tuple(int(p) for p in env.python.split(".")[:2] if p.isdigit()) >= (3, 10)
    return [Check("python", "python", "ok" if ok else "error", f"Python {env.python} on {env.machine}",
                  None if ok else "install Python 3.10 or newer")]


def installed(env: Environment, dist: str) -> str | None:
    """Version of `dist` or of a distribution that provides the same module (onnxruntime-gpu for onnxruntime)."""
    return env.version(dist) or next((env.version(a) for a in ALTERNATIVES.get(dist, ()) if env.version(a)), None)


def check_core(env: Environment) -> list[Check]:
    """Every runtime dependency of `pip install mmedge` is installed."""
    missing = [d for d in env.core if installed(env, d) is None]
    if missing:
        return [Check("install", "runtime", "error", f"missing: {', '.join(missing)}",
                      f"pip install {' '.join(missing)}")]
    return [Check("install", "runtime", "ok", ", ".join(f"{d} {installed(env, d)}" for d in env.core[:3]) + ", …")]


def _extra_fix(env: Environment, extra: str) -> str:
    if extra == "gpu" and env.is_jetson:
        return f"{JETSON_TRT_FIX} && pip install 'cuda-python>=12.6,<13'"
    if extra == "gpu" and not _has_gpu(env):
        return "pip install 'mmedge[gpu]' (on a machine with an NVIDIA GPU)"
    if extra == "gpu" and major(env.cuda_driver) == 12:  # pip would pick cuda-python 13, which needs a CUDA 13 driver
        return "pip install 'mmedge[gpu]' 'cuda-python>=12.6,<13'"
    return f"pip install 'mmedge[{extra}]'"


def check_extras(env: Environment) -> list[Check]:
    """Each mmedge extra: installed, or what is missing and what it would enable."""
    if not env.extras:
        return [Check("install", "extras", "warn", "mmedge's install metadata not found (not pip-installed?)",
                      "pip install -e .")]
    out = []
    for extra in [e for e in EXTRA_ORDER if e in env.extras] + sorted(set(env.extras) - set(EXTRA_ORDER)):
        have = {d: env.version(d) or (env.tensorrt if d == "tensorrt" else None) for d in env.extras[extra]}
        if extra == "gpu" and env.is_jetson:  # JetPack's own onnxruntime wheel may not be installed; TRT from apt
            have.pop("onnxruntime-gpu", None)
        missing = [d for d, v in have.items() if v is None]
        enables = ENABLES.get(extra, "")
        if not missing:
            out.append(Check("extras", f"[{extra}]", "ok", f"installed ({enables})"))
        else:
            out.append(Check("extras", f"[{extra}]", "missing", f"missing {', '.join(missing)}; enables {enables}",
                             _extra_fix(env, extra)))
    return out


def _provider(env: Environment, backend: str, provider: str) -> Check:
    providers = env.ort_providers or []
    if provider in providers:
        if _has_gpu(env):
            return Check("backends", backend, "ok", f"{provider} available")
        return Check("backends", backend, "warn", f"{provider} is installed but no NVIDIA GPU is visible",
                     "check the driver: nvidia-smi")
    if not _has_gpu(env):
        return Check("backends", backend, "n/a", "needs an NVIDIA GPU (none found)")
    fix = ("install the onnxruntime-gpu wheel built for your JetPack (docs/jetson.md)" if env.is_jetson
           else "pip uninstall -y onnxruntime && pip install onnxruntime-gpu")
    return Check("backends", backend, "missing", f"{provider} not in onnxruntime's providers {providers}", fix)


def check_backends(env: Environment) -> list[Check]:
    """Which mmedge backends can run here."""
    out = []
    if env.ort_providers is None:
        out.append(Check("backends", "onnxruntime", "error", f"onnxruntime does not import: {env.ort_error}",
                         "pip install --force-reinstall onnxruntime"))
    else:
        ok = "CPUExecutionProvider" in env.ort_providers
        out.append(Check("backends", "onnxruntime", "ok" if ok else "error",
                         f"providers: {', '.join(env.ort_providers)}", None if ok else "pip install onnxruntime"))
    out.append(_provider(env, "onnxruntime-cuda", "CUDAExecutionProvider"))
    out.append(_provider(env, "onnxruntime-trt", "TensorrtExecutionProvider"))
    torch = env.version("torch")
    out.append(Check("backends", "torch", "ok", f"torch {torch}") if torch else
               Check("backends", "torch", "missing", "torch not installed", "pip install 'mmedge[train]'"))
    ov = env.version("openvino")
    out.append(Check("backends", "openvino", "ok", f"openvino {ov}") if ov else
               Check("backends", "openvino", "missing", "openvino not installed", "pip install 'mmedge[openvino]'"))
    out.append(_tensorrt_backend(env))
    return out


def _tensorrt_backend(env: Environment) -> Check:
    """The tensorrt backend needs TensorRT 10+, a CUDA API and a GPU; the first gap is the verdict."""
    if not _has_gpu(env):
        return Check("backends", "tensorrt", "n/a", "needs an NVIDIA GPU (none found)")
    if not env.tensorrt or (major(env.tensorrt) or 0) < 10:
        return Check("backends", "tensorrt", "missing", "needs TensorRT 10+ (see the TensorRT check)",
                     _tensorrt_fix(env))
    if not _cuda_python(env) and not env.version("pycuda"):
        return Check("backends", "tensorrt", "missing", "needs cuda-python or pycuda", _cuda_python_fix(env))
    return Check("backends", "tensorrt", "ok", f"TensorRT {env.tensorrt}")


def check_gpu(env: Environment) -> list[Check]:
    """GPUs, compute capability and the driver's CUDA version."""
    if not env.gpus and env.is_jetson:
        return [Check("gpu", "gpu", "ok", "integrated GPU (Jetson); not listed by nvidia-smi")]
    if not env.gpus:
        return [Check("gpu", "gpu", "n/a", "no NVIDIA GPU found: the CPU backends run here")]
    out = []
    for i, gpu in enumerate(env.gpus):
        cap = gpu.get("compute_capability")
        mem = f", {gpu['memory_mib']} MiB" if gpu.get("memory_mib") else ""
        old = cap is not None and tuple(int(x) for x in str(cap).split(".")) < (7, 5)
        out.append(Check("gpu", f"gpu {i}", "warn" if old else "ok",
                         f"{gpu.get('name')}, compute capability {cap or 'unknown'}{mem}"
                         + (": older than 7.5 (Turing), check TensorRT 10's support matrix" if old else "")))
    driver = env.cuda_driver
    out.append(Check("gpu", "CUDA driver", "ok" if driver else "warn",
                     f"supports CUDA {driver}" if driver else "driver CUDA version unknown",
                     None if driver else "nvidia-smi (install or repair the NVIDIA driver)"))
    return out


def _cuda_python_fix(env: Environment) -> str:
    m = major(env.cuda_driver) or 12
    return "pip install 'cuda-python>=12.6,<13'" if m <= 12 else f"pip install 'cuda-python>={m},<{m + 1}'"


def _tensorrt_fix(env: Environment) -> str:
    if env.is_jetson:
        return JETSON_TRT_FIX
    driver = major(env.cuda_driver)
    return f"pip install 'tensorrt-cu{driver}>=10'" if driver else "pip install 'mmedge[gpu]'"


def check_tensorrt(env: Environment) -> list[Check]:
    """TensorRT present, 10 or newer, and built for a CUDA major the driver supports."""
    fix = _tensorrt_fix(env)
    if env.tensorrt_error:
        return [Check("gpu stack", "TensorRT", "error", f"tensorrt does not import: {env.tensorrt_error}", fix)]
    if not env.tensorrt:
        stubs = " (only tensorrt-stubs, the type hints, are installed)" if env.tensorrt_stubs_only else ""
        where = "" if _has_gpu(env) else " (on a machine with an NVIDIA GPU)"
        return [Check("gpu stack", "TensorRT", "missing", f"not installed{stubs}; needed by build and the tensorrt "
                      "backend", fix + where)]
    if (major(env.tensorrt) or 0) < 10:
        upgrade = ("upgrade to JetPack 6.1+ (L4T R36.4, TensorRT 10.3): docs/jetson.md" if env.is_jetson
                   else "pip install 'tensorrt>=10'")
        return [Check("gpu stack", "TensorRT", "error", f"TensorRT {env.tensorrt} is too old: mmedge needs 10+",
                      upgrade)]
    trt_cuda, driver = major(env.tensorrt_cuda), major(env.cuda_driver)
    if trt_cuda and driver and trt_cuda > driver:
        return [Check("gpu stack", "TensorRT", "error", f"TensorRT {env.tensorrt} is the CUDA {trt_cuda} build, "
                      f"the driver supports CUDA {env.cuda_driver}",
                      f"pip uninstall -y tensorrt-cu{trt_cuda} && pip install 'tensorrt-cu{driver}>=10'")]
    built = f" (CUDA {env.tensorrt_cuda} build)" if env.tensorrt_cuda else ""
    return [Check("gpu stack", "TensorRT", "ok", f"TensorRT {env.tensorrt}{built}")]


def check_cuda_apis(env: Environment) -> list[Check]:
    """cuda-python's CUDA major vs the driver's; pycuda presence; onnxruntime vs onnxruntime-gpu."""
    out = []
    cp, driver = _cuda_python(env), env.cuda_driver
    if cp and driver and (major(cp) or 0) > (major(driver) or 0):
        out.append(Check("gpu stack", "cuda-python", "error", f"cuda-python {cp} needs a CUDA {major(cp)} driver; "
                         f"this driver supports CUDA {driver} (every CUDA call would fail)", _cuda_python_fix(env)))
    elif cp and driver:
        out.append(Check("gpu stack", "cuda-python", "ok", f"cuda-python {cp} on a CUDA {driver} driver"))
    elif cp:
        out.append(Check("gpu stack", "cuda-python", "n/a", f"cuda-python {cp} installed; no NVIDIA driver to use"))
    elif _has_gpu(env) and not env.version("pycuda"):
        out.append(Check("gpu stack", "cuda-python", "missing", "no CUDA API for the tensorrt backend",
                         _cuda_python_fix(env)))
    else:
        out.append(Check("gpu stack", "cuda-python", "n/a", "not installed (needs an NVIDIA GPU)"
                         if not _has_gpu(env) else "not installed; pycuda is used"))
    pyc = env.version("pycuda")
    out.append(Check("gpu stack", "pycuda", "ok" if pyc and _has_gpu(env) else "n/a",
                     f"pycuda {pyc}" if pyc else "not installed (optional alternative to cuda-python)"))
    if env.version("onnxruntime") and env.version("onnxruntime-gpu"):
        out.append(Check("gpu stack", "onnxruntime packages", "error", "both onnxruntime and onnxruntime-gpu are "
                         "installed: they overwrite each other's module",
                         "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"))
    return out


def check_jetson(env: Environment) -> list[Check]:
    """Board, L4T/JetPack release (6.1+ for TensorRT 10) and power mode, on a Jetson."""
    if not env.is_jetson:
        return [Check("jetson", "jetson", "n/a", "not a Jetson")]
    jp = jetpack(env.l4t)
    parts = [int(p) for p in (env.l4t or "R0.0").lstrip("R").split(".")[:2] if p.isdigit()]
    recent = tuple(parts) >= MIN_JETPACK_L4T
    out = [Check("jetson", "board", "ok", env.board or "unknown Jetson board"),
           Check("jetson", "JetPack", "ok" if recent else "error",
                 f"L4T {env.l4t or 'unknown'} = JetPack {jp or 'unknown'}"
                 + ("" if recent else ": mmedge needs JetPack 6.1+ (TensorRT 10)"),
                 None if recent else "upgrade to JetPack 6.1+ (L4T R36.4): docs/jetson.md")]
    mode = env.power_mode
    if mode is None:
        out.append(Check("jetson", "power mode", "warn", "unknown (nvpmodel not found)", "sudo nvpmodel -q"))
    elif mode.upper().startswith("MAXN"):
        out.append(Check("jetson", "power mode", "ok", mode))
    else:
        out.append(Check("jetson", "power mode", "warn", f"{mode}: not the module's maximum; benchmarks depend on it",
                         "sudo nvpmodel -m <the MAXN mode id in /etc/nvpmodel.conf> && sudo jetson_clocks"))
    return out


def check_tools(env: Environment) -> list[Check]:
    """The outside tools that `mmedge export-inputs` writes commands for: Polygraphy and trtexec."""
    poly = env.tools.get("polygraphy")
    out = [Check("tools", "polygraphy", "ok", poly) if poly else
           Check("tools", "polygraphy", "missing", "not found (runs the export-inputs commands)",
                 "pip install 'mmedge[dev]'")]
    trtexec, off_path = env.tools.get("trtexec"), env.tools.get("trtexec_jetpack")
    if trtexec:
        out.append(Check("tools", "trtexec", "ok", trtexec))
    elif off_path:
        out.append(Check("tools", "trtexec", "warn", f"{off_path} (not on PATH)",
                         f"export PATH=$PATH:{off_path.rsplit('/', 1)[0]}"))
    elif _has_gpu(env):
        fix = ("sudo apt install libnvinfer-bin (trtexec lands in /usr/src/tensorrt/bin)" if env.is_jetson
               else "install TensorRT's tar/deb package from NVIDIA (the pip wheels have no trtexec)")
        out.append(Check("tools", "trtexec", "missing", "not found", fix))
    else:
        out.append(Check("tools", "trtexec", "n/a", "needs an NVIDIA GPU (none found)"))
    return out


RULES: tuple[Callable[[Environment], list[Check]], ...] = (
    check_python, check_core, check_extras, check_backends, check_gpu, check_tensorrt, check_cuda_apis, check_jetson,
    check_tools,
)


def diagnose(env: Environment) -> list[Check]:
    """Every check of every rule, in report order."""
    return [check for rule in RULES for check in rule(env)]


def exit_code(checks: list[Check]) -> int:
    """1 when any check is an error (something installed is broken or mismatched), else 0."""
    return 1 if any(c.status == "error" for c in checks) else 0
