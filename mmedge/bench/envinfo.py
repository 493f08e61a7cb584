"""What machine and software a benchmark ran on: enough to reproduce or distrust a number.

Nothing here imports torch (versions come from package metadata) and every probe degrades
to None instead of failing: an environment record must never break a benchmark.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PACKAGES: tuple[str, ...] = (
    "mmedge",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "tensorrt",
    "tokenizers",
    "torch",
)
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OMP_PROC_BIND",
    "OMP_PLACES",
    "KMP_AFFINITY",
    "CUDA_VISIBLE_DEVICES",
)
X86_FLAGS: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni")
AMX_FLAGS: tuple[str, ...] = ("amx_tile", "amx_int8", "amx_bf16")
ARM_FLAGS: tuple[str, ...] = ("asimd", "asimddp", "i8mm", "sve", "bf16")
CPUINFO = Path("/proc/cpuinfo")


def _run(cmd: list[str], timeout: float = 10.0, cwd: Path | None = None) -> str | None:
    """stdout of `cmd`, or None if it is missing, fails or times out."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("%s failed: %s", cmd[0], exc)
        return None
    if done.returncode != 0:
        logger.debug("%s exited %d: %s", cmd[0], done.returncode, done.stderr.strip())
        return None
    return done.stdout


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None if absent), read from metadata without importing."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if "mmedge" in out and out["mmedge"] is None:  # running from a source checkout
        from mmedge import __version__

        out["mmedge"] = __version__
    return out


def _cpuinfo_text() -> str:
    """Contents of /proc/cpuinfo, or '' where it does not exist."""
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def _cpuinfo_field(text: str, *keys: str) -> str | None:
    """First value of any of `keys` in /proc/cpuinfo text."""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in keys and value.strip():
            return value.strip()
    return None


def cpu_model(text: str | None = None) -> str | None:
    """CPU model name (x86 'model name'; ARM board model or implementer/part ids as a fallback)."""
    text = _cpuinfo_text() if text is None else text
    model = _cpuinfo_field(text, "model name", "Model", "Hardware", "cpu model")
    if model:
        return model
    part = _cpuinfo_field(text, "CPU part")
    if part:
        return f"ARM implementer {_cpuinfo_field(text, 'CPU implementer')} part {part}"
    return platform.processor() or None


def board_model() -> str | None:
    """Device-tree board name (e.g. 'NVIDIA Jetson AGX Orin Developer Kit'), None off ARM boards."""
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def isa_flags(text: str | None = None) -> dict[str, bool]:
    """ISA features of interest for inference kernels, from /proc/cpuinfo 'flags'/'Features'."""
    text = _cpuinfo_text() if text is None else text
    raw = _cpuinfo_field(text, "flags", "Features") or ""
    have = set(raw.split())
    out = {flag: flag in have for flag in X86_FLAGS}
    out.update({flag: flag in have for flag in AMX_FLAGS})
    out["amx"] = any(out[f] for f in AMX_FLAGS)
    if any(f in have for f in ARM_FLAGS):
        out.update({flag: flag in have for flag in ARM_FLAGS})
    return out


def core_counts(text: str | None = None) -> dict[str, int | None]:
    """Physical, logical and usable (affinity) core counts."""
    logical = os.cpu_count()
    physical: int | None = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        text = _cpuinfo_text() if text is None else text
        pairs: set[tuple[str, str]] = set()
        phys_id = core_id = ""
        for line in [*text.splitlines(), ""]:
            name, _, value = line.partition(":")
            name = name.strip()
            if name == "physical id":
                phys_id = value.strip()
            elif name == "core id":
                core_id = value.strip()
            elif not line.strip() and core_id:
                pairs.add((phys_id, core_id))
                phys_id = core_id = ""
        physical = len(pairs) or None
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    return {"physical": physical or logical, "logical": logical, "usable": usable}


def cpu_max_freq_mhz(text: str | None = None) -> float | None:
    """Highest CPU clock in MHz: cpufreq max, else psutil, else the 'cpu MHz' of /proc/cpuinfo."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()
        return int(khz) / 1000.0
    except (OSError, ValueError):
        pass
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq is not None and (freq.max or freq.current):
            return float(freq.max or freq.current)
    except (ImportError, RuntimeError, OSError, NotImplementedError):
        pass
    text = _cpuinfo_text() if text is None else text
    mhz = _cpuinfo_field(text, "cpu MHz")
    try:
        return float(mhz) if mhz else None
    except ValueError:
        return None


def fp32_flops_per_cycle(flags: dict[str, bool]) -> tuple[int, str]:
    """Peak fp32 FLOPs per cycle per core implied by the ISA, with the assumption spelled out.

    FLOPs/cycle = SIMD fp32 lanes x 2 (an FMA is a multiply and an add) x FMA units:
    AVX-512: 16 lanes x 2 x 2 units = 64; AVX2+FMA: 8 x 2 x 2 = 32; ARM NEON (128-bit):
    4 x 2 x 2 pipes = 16; otherwise SSE-class 4 x 2 x 1 = 8. Real parts differ (one AVX-512
    unit on many client chips, double-pumped AVX-512 on AMD Zen 4), so this is an upper bound.
    """
    if flags.get("avx512f"):
        return 64, "AVX-512: 16 fp32 lanes x 2 (FMA) x 2 units"
    if flags.get("avx2") and flags.get("fma", True):
        return 32, "AVX2: 8 fp32 lanes x 2 (FMA) x 2 units"
    if flags.get("asimd"):
        return 16, "NEON: 4 fp32 lanes x 2 (FMA) x 2 pipes"
    return 8, "scalar/SSE: 4 fp32 lanes x 2 (FMA) x 1 unit"


def int8_ops_per_cycle(flags: dict[str, bool]) -> tuple[int, str]:
    """Peak int8 ops per cycle per core (a MAC = 2 ops) implied by the ISA, with the assumption spelled out.

    AVX-512 VNNI: vpdpbusd does 64 u8xs8 MACs per 512-bit instruction, 2 units = 256 ops; AVX-VNNI
    (256-bit): 128; AVX2 / AVX-512 without VNNI: vpmaddubsw + vpmaddwd, about twice the fp32 rate;
    NEON with dot product: sdot does 16 MACs per 128 bits, 2 pipes = 64. An upper bound, like fp32's.
    """
    if flags.get("avx512_vnni"):
        return 256, "AVX-512 VNNI: 64 int8 MACs x 2 ops x 2 units"
    if flags.get("avx_vnni"):
        return 128, "AVX-VNNI: 32 int8 MACs x 2 ops x 2 units"
    if flags.get("asimddp"):
        return 64, "NEON dot product: 16 int8 MACs x 2 ops x 2 pipes"
    fp32, _ = fp32_flops_per_cycle(flags)
    return 2 * fp32, "no int8 dot-product instructions: ~2x the fp32 rate (multiply-add pairs)"


def cpu_peak_gflops(
    cores: int | None = None, freq_mhz: float | None = None, flags: dict[str, bool] | None = None
) -> float | None:
    """Estimated peak fp32 GFLOP/s = physical cores x max GHz x FLOPs/cycle (see fp32_flops_per_cycle)."""
    cores = cores if cores is not None else core_counts()["physical"]
    freq_mhz = freq_mhz if freq_mhz is not None else cpu_max_freq_mhz()
    if not cores or not freq_mhz:
        return None
    per_cycle, _ = fp32_flops_per_cycle(flags if flags is not None else isa_flags())
    return cores * (freq_mhz / 1000.0) * per_cycle


def cpu_peak_int8_gops(cores: int | None, freq_mhz: float | None, flags: dict[str, bool]) -> float | None:
    """Estimated peak int8 GOP/s = physical cores x max GHz x int8 ops/cycle (see int8_ops_per_cycle)."""
    if not cores or not freq_mhz:
        return None
    return cores * (freq_mhz / 1000.0) * int8_ops_per_cycle(flags)[0]


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (resource.getrusage, else psutil)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    except ImportError:
        pass
    try:
        import psutil

        info = psutil.Process().memory_info()
        return float(getattr(info, "peak_wset", info.rss)) / (1024.0 * 1024.0)
    except ImportError:
        return None


def gpu_info() -> list[dict[str, str]] | None:
    """One dict per GPU from nvidia-smi (name, driver, memory, compute capability), None without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = ["name", "driver_version", "memory.total", "compute_cap"]
    out = _run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if out is None:  # old drivers do not know compute_cap
        fields = fields[:-1]
        out = _run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if out is None:
        return None
    gpus = []
    for line in out.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        gpus.append(dict(zip(fields, values, strict=False)))
    return gpus or None


def git_commit(cwd: Path | None = None) -> dict[str, Any] | None:
    """HEAD commit and dirty flag of the git repository at `cwd` (default: the current directory)."""
    exe = shutil.which("git")
    if exe is None:
        return None
    where = cwd or Path.cwd()
    head = _run([exe, "rev-parse", "HEAD"], timeout=5.0, cwd=where)
    if head is None:
        return None
    status = _run([exe, "status", "--porcelain", "--untracked-files=no"], timeout=5.0, cwd=where)
    return {"commit": head.strip(), "dirty": bool(status.strip()) if status is not None else None}


def _bundle_record(bundle_root: Path) -> dict[str, Any]:
    """Path and bundle.json sha256 of a bundle directory."""
    from mmedge.io import sha256_file

    manifest = Path(bundle_root) / "bundle.json"
    record: dict[str, Any] = {"path": str(bundle_root), "bundle_json_sha256": None}
    try:
        record["bundle_json_sha256"] = sha256_file(manifest)
    except OSError as exc:
        logger.warning("cannot hash %s: %s", manifest, exc)
    return record


def environment_record(bundle_root: Path | None = None) -> dict[str, Any]:
    """Everything about this machine and software that a benchmark result depends on."""
    text = _cpuinfo_text()
    flags = isa_flags(text)
    cores = core_counts(text)
    freq = cpu_max_freq_mhz(text)
    per_cycle, assumption = fp32_flops_per_cycle(flags)
    peak = cpu_peak_gflops(cores["physical"], freq, flags)
    int8_per_cycle, int8_assumption = int8_ops_per_cycle(flags)
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "packages": package_versions(),
        "cpu": {
            "model": cpu_model(text),
            "board": board_model(),
            "cores": cores,
            "max_freq_mhz": freq,
            "isa": flags,
            "fp32_flops_per_cycle": per_cycle,
            "peak_gflops_estimate": peak,
            "peak_gflops_assumption": f"physical cores x max GHz x {per_cycle} ({assumption})",
            "int8_ops_per_cycle": int8_per_cycle,
            "peak_int8_gops_estimate": cpu_peak_int8_gops(cores["physical"], freq, flags),
            "peak_int8_assumption": f"physical cores x max GHz x {int8_per_cycle} ({int8_assumption})",
        },
        "gpu": gpu_info(),
        "threads_env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "bundle": _bundle_record(bundle_root) if bundle_root is not None else None,
        "git": git_commit(),
    }
