"""What an engine depends on: TensorRT (version and CUDA major), GPU, CUDA driver, L4T, board.

Every Orin module reports the same GPU name ("Orin") and compute capability (8.7), so the
SM count, memory size, device-tree board model and DLA count tell an AGX Orin from an Orin
Nano. `probe_environment()` reads the live machine; everything else takes a `TrtEnvironment`
value, so cache keys and compatibility checks are testable anywhere with a fake one.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge import serialize
from mmedge.errors import EngineError, InputError, MissingDependencyError

if TYPE_CHECKING:
    from mmedge.runtime.cuda.select import CudaApi

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")  # "NVIDIA Jetson AGX Orin Developer Kit"
_TRT_DIST = re.compile(r"^tensorrt[-_]cu(\d+)(?:[-_](?:bindings|libs))?$", re.IGNORECASE)
RETIRED_KEYS = ("cuda_runtime",)  # schema-1 sidecars: the binding's CUDA runtime (never part of an engine)
TRT_INSTALL_HINT = (
    "tensorrt (on Jetson, use JetPack's TensorRT python bindings instead: "
    "sudo apt install python3-libnvinfer)"
)


@dataclass(frozen=True)
class TrtEnvironment:
    """The machine facts an engine is tied to (JSON scalars, so they serialize as-is).

    The CUDA runtime of the Python binding (cuda-python/pycuda) is deliberately absent: it
    does not change the engine; TensorRT's own CUDA major (`tensorrt_cuda`) and the driver do.
    """

    tensorrt: str  # "10.3.0.30"
    gpu: str  # "Orin", "NVIDIA H200"
    compute_capability: str  # "8.7"
    cuda_driver: str  # "12.8" (the newest CUDA the driver supports)
    l4t: str | None = None  # "R36.4.3" on Jetson, else None
    sm_count: int | None = None  # 16 on AGX Orin 64GB, 8 on Orin Nano
    memory_mib: int | None = None  # device (on Jetson: shared system) memory in MiB
    board: str | None = None  # /proc/device-tree/model on Jetson, else None
    dla_cores: int | None = None  # TensorRT's num_DLA_cores (0 off Jetson and on Orin Nano)
    tensorrt_cuda: str | None = None  # "12" for tensorrt-cu12, "13" for tensorrt-cu13 wheels

    @property
    def is_jetson(self) -> bool:
        """True on a Jetson (an L4T release was found)."""
        return self.l4t is not None

    @property
    def sm(self) -> str:
        """Compute capability as "sm_87"."""
        return "sm_" + self.compute_capability.replace(".", "")

    def to_json(self) -> dict[str, Any]:
        """Serialize for sidecars and cache keys (every field, None included)."""
        return serialize.to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrtEnvironment:
        """Parse the environment of a sidecar/key dict (EngineError if malformed).

        Fields newer than the sidecar read as None; retired keys of older sidecars are dropped.
        """
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
        return serialize.from_json(cls, data, where="environment", error=EngineError)


def require_tensorrt() -> str:
    """Check that the real `tensorrt` (>= 10) imports and return its version, else raise
    MissingDependencyError (one line, with the fix). Callers then `import tensorrt as trt`
    locally, which keeps the stubs' types.

    `tensorrt-stubs` installs a `tensorrt/` folder holding only `.pyi` files, which Python
    imports as an empty namespace package; that counts as "not installed" here.
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorrt", "TensorRT engines (mmedge build / the tensorrt backend)", TRT_INSTALL_HINT
        ) from exc
    if getattr(trt, "__file__", None) is None or not hasattr(trt, "Builder"):
        raise MissingDependencyError(
            "tensorrt", "TensorRT engines (mmedge build / the tensorrt backend)", TRT_INSTALL_HINT
        )
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise MissingDependencyError(
            "tensorrt>=10",
            f"mmedge (found TensorRT {trt.__version__}, needs 10 or newer)",
            "'tensorrt>=10' (on Jetson: JetPack 6 or newer)",
        )
    return str(trt.__version__)


def tensorrt_available() -> bool:
    """True when the real TensorRT (>= 10) python bindings import."""
    try:
        require_tensorrt()
    except MissingDependencyError:
        return False
    return True


def read_l4t_release(path: Path = NV_TEGRA_RELEASE) -> str | None:
    """The Jetson L4T release ("R36.4.3") from /etc/nv_tegra_release, or None off Jetson."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if match is None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        return first[:80] or None
    return f"R{match.group(1)}.{match.group(2)}"


def read_board_model(path: Path = DEVICE_TREE_MODEL) -> str | None:
    """The board model from the device tree ("NVIDIA Jetson Orin Nano Developer Kit"), or None."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
    model = text.replace("\0", " ").strip()
    return model[:120] or None


def tensorrt_cuda_major(packages: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """The CUDA major the installed TensorRT wheel targets ("12" for tensorrt-cu12), or None.

    cu12 and cu13 wheels report the same `trt.__version__`; only the pip distribution that
    provides the `tensorrt` package tells them apart. None for TensorRT outside pip (JetPack's
    apt bindings), where the L4T release already pins the CUDA major.
    """
    if packages is None:
        packages = importlib.metadata.packages_distributions()
    majors = {m.group(1) for name in packages.get("tensorrt", ()) if (m := _TRT_DIST.match(name))}
    return majors.pop() if len(majors) == 1 else None


def dla_core_count() -> int:
    """Number of DLA cores TensorRT sees here (0 on GPUs without DLA)."""
    import tensorrt as trt

    return int(trt.Runtime(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)


def check_build_target(env: TrtEnvironment, hardware_compat: str = "none", dla_core: int | None = None) -> None:
    """InputError for what this machine cannot build: hardware-compatible engines on Jetson, a missing DLA core."""
    if hardware_compat != "none" and env.is_jetson:
        raise InputError(
            f"--hardware-compat {hardware_compat} is not supported on Jetson (L4T {env.l4t}): TensorRT "
            "builds hardware-compatible engines only for discrete Ampere+ GPUs; drop --hardware-compat "
            "and build on each Jetson model"
        )
    if dla_core is not None and env.dla_cores is not None and dla_core >= env.dla_cores:
        where = env.board or env.gpu
        raise InputError(
            f"--dla-core {dla_core}: {where} has {env.dla_cores} DLA core(s); "
            + (f"pick 0..{env.dla_cores - 1}" if env.dla_cores else "drop --dla-core to build for the GPU")
        )


def probe_environment(
    cuda: CudaApi | None = None,
    device: int = 0,
    *,
    l4t_path: Path = NV_TEGRA_RELEASE,
    model_path: Path = DEVICE_TREE_MODEL,
) -> TrtEnvironment:
    """Read the live machine: TensorRT (version, CUDA major, DLA cores), GPU, driver, L4T, board."""
    version = require_tensorrt()
    if cuda is None:
        from mmedge.runtime.cuda.select import get_cuda_api

        cuda = get_cuda_api(device=device)
    info = cuda.device_info(device)
    l4t = read_l4t_release(l4t_path)
    return TrtEnvironment(
        tensorrt=version,
        gpu=info.name,
        compute_capability=info.compute_capability,
        cuda_driver=info.driver_version,
        l4t=l4t,
        sm_count=info.sm_count or None,
        memory_mib=(info.total_memory >> 20) or None,
        board=read_board_model(model_path),
        dla_cores=dla_core_count(),
        tensorrt_cuda=tensorrt_cuda_major(),
    )


def short_version(version: str, other: str | None = None) -> str:
    """ "10.3.0.30" as "10.3", or with as many parts as it takes to differ from `other`."""
    parts = version.split(".")
    if other is None:
        return ".".join(parts[:2])
    other_parts = other.split(".")
    for n in range(2, len(parts) + 1):
        if parts[:n] != other_parts[:n]:
            return ".".join(parts[:n])
    return version


def version_tuple(version: str) -> tuple[int, ...]:
    """ "10.3.0.30" as (10, 3, 0, 30) (non-numeric parts count as 0)."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))
