"""What an engine depends on: TensorRT version, GPU, compute capability, CUDA, L4T release.

`probe_environment()` reads the live machine; everything else takes a `TrtEnvironment`
value, so cache keys and compatibility checks are testable anywhere with a fake one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmedge.errors import MissingDependencyError

if TYPE_CHECKING:
    from mmedge.runtime.cuda.select import CudaApi

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
TRT_INSTALL_HINT = (
    "tensorrt (on Jetson, use JetPack's TensorRT python bindings instead: "
    "sudo apt install python3-libnvinfer)"
)


@dataclass(frozen=True)
class TrtEnvironment:
    """The machine facts an engine is tied to (all strings, so they serialize as-is)."""

    tensorrt: str  # "10.3.0.30"
    gpu: str  # "Orin", "NVIDIA H200"
    compute_capability: str  # "8.7"
    cuda_runtime: str  # "12.6"
    cuda_driver: str  # "12.8"
    l4t: str | None = None  # "R36.4.3" on Jetson, else None

    @property
    def sm(self) -> str:
        """Compute capability as "sm_87"."""
        return "sm_" + self.compute_capability.replace(".", "")

    def to_json(self) -> dict[str, Any]:
        """Serialize for sidecars and cache keys."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrtEnvironment:
        """Parse the environment fields out of a sidecar/key dict."""
        return cls(
            tensorrt=str(data["tensorrt"]),
            gpu=str(data["gpu"]),
            compute_capability=str(data["compute_capability"]),
            cuda_runtime=str(data["cuda_runtime"]),
            cuda_driver=str(data["cuda_driver"]),
            l4t=data.get("l4t"),
        )


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


def probe_environment(cuda: CudaApi | None = None, device: int = 0) -> TrtEnvironment:
    """Read the live machine: TensorRT version, GPU name/compute capability, CUDA, L4T."""
    version = require_tensorrt()
    if cuda is None:
        from mmedge.runtime.cuda.select import get_cuda_api

        cuda = get_cuda_api(device=device)
    info = cuda.device_info(device)
    return TrtEnvironment(
        tensorrt=version,
        gpu=info.name,
        compute_capability=info.compute_capability,
        cuda_runtime=info.runtime_version,
        cuda_driver=info.driver_version,
        l4t=read_l4t_release(),
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
