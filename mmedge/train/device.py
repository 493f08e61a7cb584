"""Where training runs: `train.device` (auto | cpu | cuda) → a torch device, and the matching DDP backend.

`auto` takes CUDA only when torch sees a GPU and says which it took; `cuda` without a GPU, and more
processes on a node than GPUs (auto or cuda), are a BackendError, never a silent CPU run. Under
torchrun each rank takes cuda:LOCAL_RANK. Data stays on the CPU (splits, shuffling, modality dropout
and augmentation draws use CPU generators, so a CPU run is unchanged); every batch is moved to the
device before the forward pass.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from mmedge.config import TRAIN_DEVICES
from mmedge.errors import BackendError, ConfigError

log = logging.getLogger(__name__)


def choose_device(requested: str, cuda_available: bool, cuda_count: int = 1, local_rank: int = 0,
                  local_world: int = 1) -> str:
    """'cpu' or 'cuda:N' for a requested device (pure: no torch calls); BackendError when CUDA is missing.

    `auto` takes CUDA when torch sees a GPU; then every process on this node needs its own GPU.
    """
    if requested not in TRAIN_DEVICES:
        raise ConfigError(f"train.device must be one of {', '.join(TRAIN_DEVICES)}, got '{requested}'")
    if requested == "cpu" or (requested == "auto" and not cuda_available):
        return "cpu"
    if not cuda_available:
        raise BackendError("train.device is cuda but torch sees no CUDA GPU (a CPU-only torch build, no driver, "
                           "or CUDA_VISIBLE_DEVICES empty); use --device cpu or auto")
    if local_world > cuda_count:  # every rank fails alike (rank 0 too), so none trains on a device the rest lack
        raise BackendError(f"{local_world} processes on this node but torch sees {cuda_count} GPU(s); start at "
                           "most one process per GPU (--nproc_per_node), or train on the CPU with --device cpu")
    if local_rank >= cuda_count:
        raise BackendError(f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but torch sees {cuda_count} GPU(s); "
                           "start at most one process per GPU")
    return f"cuda:{local_rank}"


def dist_backend(device: str) -> str:
    """The process-group backend for a device: NCCL for CUDA, gloo for the CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


def select_device(requested: str, local_rank: int = 0) -> torch.device:
    """The training device for this process (cuda:LOCAL_RANK made current), logged once."""
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # set by torchrun
    name = choose_device(requested, available, count, local_rank, local_world)
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        log.info("training on %s (%s; train.device=%s)", name, torch.cuda.get_device_name(device), requested)
    else:
        why = "" if requested == "cpu" else ", no CUDA GPU seen"
        log.info("training on the CPU (train.device=%s%s)", requested, why)
    return device


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def to_device(tensors: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The same named tensors on `device` (no copy for tensors already there)."""
    return {k: v.to(device) for k, v in tensors.items()}
