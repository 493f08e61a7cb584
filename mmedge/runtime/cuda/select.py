"""The small CUDA surface the TensorRT runner needs, and the choice between its implementations.

Two implementations: cuda-python (`cuda.bindings.runtime`, the default) and pycuda. One is
chosen per process (explicitly, via MMEDGE_CUDA_API, or by availability with cuda-python
first), logged, and never mixed: asking for the other one later is an error. Handles are
plain ints (device pointers, streams as cudaStream_t values TensorRT can use, opaque ids for
events and graphs). Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading

from mmedge.errors import BackendError, MissingDependencyError
from mmedge.runtime.cuda.contract import CudaApi, DeviceInfo, version_string

log = logging.getLogger(__name__)
__all__ = ["CUDA_APIS", "CudaApi", "DeviceInfo", "get_cuda_api", "probe_cuda", "reset_cuda_api", "version_string"]

CUDA_APIS: tuple[str, ...] = ("cuda-python", "pycuda")
ENV_VAR = "MMEDGE_CUDA_API"
_PIP = {"cuda-python": "cuda-python", "pycuda": "pycuda"}
_MODULE = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver"}


_lock = threading.Lock()
_active: CudaApi | None = None
_active_device: int | None = None


def _available(name: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULE[name]) is not None
    except (ImportError, ValueError):
        return False


def _construct(name: str) -> CudaApi:
    if name == "cuda-python":
        from mmedge.runtime.cuda.cuda_python import CudaPythonApi

        return CudaPythonApi()
    from mmedge.runtime.cuda.pycuda_api import PyCudaApi

    return PyCudaApi()


def _resolve_name(name: str | None) -> str:
    requested = name or os.environ.get(ENV_VAR) or None
    if requested is not None:
        if requested not in CUDA_APIS:
            raise BackendError(f"unknown CUDA API '{requested}' (choose from: {', '.join(CUDA_APIS)})")
        if not _available(requested):
            raise MissingDependencyError(_PIP[requested], f"the CUDA API '{requested}'", _PIP[requested])
        return requested
    for candidate in CUDA_APIS:
        if _available(candidate):
            return candidate
    raise MissingDependencyError(
        "cuda-python",
        "the TensorRT backend (CUDA streams and buffers)",
        "cuda-python (or: pip install pycuda)",
    )


def get_cuda_api(name: str | None = None, device: int = 0) -> CudaApi:
    """The process's CUDA API (`name`, else $MMEDGE_CUDA_API, else cuda-python, else pycuda) on `device`.

    The first call picks the API and applies `set_device(device)`; later calls must ask for the
    same API and device. Raises BackendError for an unknown name, another API or device than
    the one in use, a device that is not visible, or when CUDA is not usable (no GPU / driver);
    MissingDependencyError when not installed.
    """
    global _active, _active_device
    with _lock:
        chosen = _resolve_name(name) if name is not None or _active is None else _active.name
        if _active is not None:
            if chosen != _active.name:
                raise BackendError(
                    f"CUDA API '{chosen}' was requested but '{_active.name}' is already in use "
                    "in this process; mixing them is not supported: pass the same choice "
                    f"everywhere (or set {ENV_VAR})"
                )
            if device != _active_device:
                raise BackendError(
                    f"CUDA device {device} was requested but device {_active_device} is already in use in "
                    "this process; use one device per process (run one process per GPU, or set "
                    "CUDA_VISIBLE_DEVICES)"
                )
            return _active
        api = _construct(chosen)
        count = api.device_count()
        if not 0 <= device < count:
            choice = f": pick one of 0..{count - 1}" if count else ": check the driver and CUDA_VISIBLE_DEVICES"
            raise BackendError(f"CUDA device {device} requested but {count} device(s) are visible{choice}")
        api.set_device(device)
        log.info("CUDA API: %s, device %d of %d", chosen, device, count)
        _active, _active_device = api, device
        return api


def probe_cuda(name: str | None = None) -> tuple[bool, str]:
    """Whether CUDA is usable (without making the API the process's choice), and why not."""
    try:
        chosen = _resolve_name(name)
        count = _construct(chosen).device_count()
    except (BackendError, MissingDependencyError) as exc:
        return False, str(exc)
    if count < 1:
        return False, f"{chosen}: no CUDA device is visible"
    return True, f"{chosen}: {count} device(s)"


def reset_cuda_api() -> None:
    """Forget the process's CUDA API choice (for tests; do not call with live runners)."""
    global _active, _active_device
    with _lock:
        _active, _active_device = None, None
