"""The facts `mmedge doctor` judges: one JSON-serializable value, gathered from the live machine by `gather()`.

Every probe is defensive: a missing tool or library is a fact (None / empty), never an exception, so
doctor always gets to report. Heavy libraries (onnxruntime, tensorrt, cuda-python) are imported inside
the probes only.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import logging
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmedge.errors import InputError

log = logging.getLogger(__name__)
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
# Distributions looked at besides mmedge's own requirements (alternatives and pieces of the GPU stack).
EXTRA_DISTS = ("onnxruntime-gpu", "cuda-bindings", "cuda-python", "pycuda", "tensorrt", "tensorrt-cu12",
               "tensorrt-cu13", "polygraphy")
TRTEXEC_JETPACK = Path("/usr/src/tensorrt/bin/trtexec")  # where JetPack puts it (not on PATH)
NVIDIA_SMI_FIELDS = ("name", "compute_cap", "memory.total", "driver_version")


@dataclass
class Environment:
    """What is installed and what hardware is here (JSON scalars/lists/dicts only)."""

    python: str
    machine: str  # "x86_64", "aarch64"
    system: str = ""  # platform.platform()
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version (None: absent)
    core: list[str] = field(default_factory=list)  # distributions `pip install mmedge` needs
    extras: dict[str, list[str]] = field(default_factory=dict)  # mmedge extra -> its distributions
    ort_providers: list[str] | None = None  # None: onnxruntime does not import
    ort_error: str | None = None
    tensorrt: str | None = None  # version of the importable `tensorrt` module (pip or JetPack's apt)
    tensorrt_error: str | None = None  # it is there but does not import
    tensorrt_stubs_only: bool = False  # only `tensorrt-stubs` (type hints) is installed: no TensorRT
    tensorrt_cuda: str | None = None  # "12" for the tensorrt-cu12 wheel (None: apt install or unknown)
    cuda_driver: str | None = None  # newest CUDA the driver supports, "12.6"
    gpus: list[dict[str, Any]] = field(default_factory=list)  # name, compute_capability, memory_mib, driver
    board: str | None = None  # /proc/device-tree/model
    l4t: str | None = None  # "R36.4.0" from /etc/nv_tegra_release
    power_mode: str | None = None  # `nvpmodel -q`: "MAXN", "15W"
    cpu: str | None = None
    cores: int | None = None
    tools: dict[str, str | None] = field(default_factory=dict)  # outside tools: name -> path (None: not found)

    @property
    def is_jetson(self) -> bool:
        """An NVIDIA Jetson: an L4T release or a Jetson device-tree model."""
        return self.l4t is not None or "jetson" in (self.board or "").lower()

    def version(self, dist: str) -> str | None:
        """Installed version of a distribution (None when absent)."""
        return self.packages.get(dist)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON dict (every field)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Environment:
        """Rebuild from `to_json` output (a recorded machine); InputError on unknown or missing keys."""
        if not isinstance(data, dict):
            raise InputError("an environment description must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown environment key(s) {unknown} (known: {sorted(known)})")
        missing = [k for k in ("python", "machine") if k not in data]
        if missing:
            raise InputError(f"environment description lacks {missing}")
        for f in dataclasses.fields(cls):
            if f.name in data and not FIELD_CHECKS[str(f.type)](data[f.name]):
                raise InputError(f"environment key '{f.name}' must be {f.type}, got {type(data[f.name]).__name__} "
                                 f"{str(data[f.name])[:60]!r}")
        return cls(**data)


def _str_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _str_dict(value: Any, ok: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and ok(v) for k, v in value.items())


# Environment's field annotations (strings: postponed evaluation) → the check of a recorded value.
FIELD_CHECKS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
    "str | None": _str_or_none,
    "bool": lambda v: isinstance(v, bool),
    "int | None": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "list[str]": _str_list,
    "list[str] | None": lambda v: v is None or _str_list(v),
    "dict[str, str | None]": lambda v: _str_dict(v, _str_or_none),
    "dict[str, list[str]]": lambda v: _str_dict(v, _str_list),
    "list[dict[str, Any]]": lambda v: isinstance(v, list) and all(_str_dict(g, lambda _: True) for g in v),
}


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of a command, None when it is absent, fails or hangs."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", cmd[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def requirements() -> tuple[list[str], dict[str, list[str]]]:
    """(core distributions, {extra: distributions}) from mmedge's installed metadata."""
    try:
        reqs = md.requires("mmedge") or []
    except md.PackageNotFoundError:
        return [], {}
    core: list[str] = []
    extras: dict[str, list[str]] = {}
    for req in reqs:
        name = _REQ.match(req)
        if name is None:
            continue
        marker = req.split(";", 1)[1] if ";" in req else ""
        extra = _EXTRA.search(marker)
        if extra:
            extras.setdefault(extra.group(1), []).append(name.group(1))
        elif not marker:  # e.g. tomli is only for old Pythons
            core.append(name.group(1))
    return core, extras


def package_versions(names: list[str]) -> dict[str, str | None]:
    """{distribution: version or None}."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def ort_providers() -> tuple[list[str] | None, str | None]:
    """ONNX Runtime's available execution providers, or (None, why it does not import)."""
    try:
        import onnxruntime
    except Exception as exc:  # ImportError or a broken native library
        return None, f"{type(exc).__name__}: {exc}"
    return list(onnxruntime.get_available_providers()), None


def tensorrt_module() -> tuple[str | None, str | None, bool]:
    """(version, import error, stubs only) of `import tensorrt`: (None, None, False) when not installed."""
    import importlib.util

    try:
        if importlib.util.find_spec("tensorrt") is None:
            return None, None, False
        import tensorrt as trt
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}", False
    if getattr(trt, "__file__", None) is None or not hasattr(trt, "Builder"):
        return None, None, True  # a namespace package of .pyi files
    return str(trt.__version__), None, False


def nvidia_smi() -> tuple[list[dict[str, Any]], str | None]:
    """GPUs and the driver's CUDA version from nvidia-smi ([], None without it)."""
    out = _run(["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"])
    gpus = []
    for line in (out or "").strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(NVIDIA_SMI_FIELDS):
            name, cap, mem, driver = values
            gpus.append({"name": name, "compute_capability": cap if re.match(r"^\d+\.\d+$", cap) else None,
                         "memory_mib": int(mem) if mem.isdigit() else None, "driver_version": driver})
    header = _run(["nvidia-smi"]) or ""
    match = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return gpus, match.group(1) if match else None


def cuda_python_driver() -> tuple[str | None, list[dict[str, Any]]]:
    """The driver's CUDA version and devices via cuda-python's runtime API (None, [] when unusable)."""
    try:
        from cuda.bindings import runtime as rt
    except Exception:
        return None, []
    try:
        err, version = rt.cudaDriverGetVersion()
        driver = f"{version // 1000}.{version % 1000 // 10}" if int(err) == 0 and version else None
        err, count = rt.cudaGetDeviceCount()
        gpus = []
        for i in range(count if int(err) == 0 and count else 0):
            err, prop = rt.cudaGetDeviceProperties(i)
            if int(err) == 0:
                raw = prop.name
                name = raw.decode(errors="replace").rstrip("\0") if isinstance(raw, bytes) else str(raw)
                gpus.append({"name": name, "compute_capability": f"{prop.major}.{prop.minor}",
                             "memory_mib": int(prop.totalGlobalMem) >> 20, "driver_version": None})
    except Exception as exc:  # a broken binding is reported by the version rules, not here
        log.debug("cuda-python probe failed: %s", exc)
        return None, []
    return driver, gpus


def power_mode() -> str | None:
    """The Jetson power mode name from `nvpmodel -q` ("MAXN", "15W"), None without nvpmodel."""
    out = _run(["nvpmodel", "-q"])
    match = re.search(r"NV Power Mode:\s*(\S+)", out or "")
    return match.group(1) if match else None


def tool_paths() -> dict[str, str | None]:
    """Where the outside tools are: trtexec on PATH, JetPack's trtexec off PATH, polygraphy (PATH or this venv)."""
    import sys

    venv = Path(sys.executable).parent / "polygraphy"
    return {"trtexec": shutil.which("trtexec"), "trtexec_jetpack": str(TRTEXEC_JETPACK) if TRTEXEC_JETPACK.is_file()
            else None, "polygraphy": shutil.which("polygraphy") or (str(venv) if venv.is_file() else None)}


def gather() -> Environment:
    """Read this machine."""
    from mmedge.bench.envinfo import core_counts, cpu_model
    from mmedge.runtime.backends.tensorrt.env import read_board_model, read_l4t_release, tensorrt_cuda_major

    core, extras = requirements()
    names = sorted({*core, *(d for dists in extras.values() for d in dists), *EXTRA_DISTS})
    providers, ort_error = ort_providers()
    trt_version, trt_error, stubs = tensorrt_module()
    gpus, driver = nvidia_smi()
    if driver is None or not gpus:
        cp_driver, cp_gpus = cuda_python_driver()
        driver, gpus = driver or cp_driver, gpus or cp_gpus
    return Environment(
        python=platform.python_version(), machine=platform.machine(), system=platform.platform(),
        packages=package_versions(names), core=core, extras=extras,
        ort_providers=providers, ort_error=ort_error, tensorrt=trt_version, tensorrt_error=trt_error,
        tensorrt_stubs_only=stubs, tensorrt_cuda=tensorrt_cuda_major() if trt_version else None,
        cuda_driver=driver, gpus=gpus,
        board=read_board_model(), l4t=read_l4t_release(), power_mode=power_mode(),
        cpu=cpu_model(), cores=core_counts()["usable"], tools=tool_paths(),
    )
