"""Checkpoints written while training: the best epoch's weights and everything `--resume` needs.

checkpoints/best.safetensors  weights of the best epoch so far (safetensors: no pickle)
checkpoints/last.pt           the last finished epoch: weights, optimizer, scheduler, RNG states of every
                              rank, early-stopping state, history, phase and epoch (torch.load weights_only)
Both are replaced atomically after every epoch that changes them, so a kill at any moment leaves
a consistent pair; resuming from last.pt replays the remaining epochs exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmedge.errors import InputError
from mmedge.io import atomic_path
from mmedge.train.distributed import DistContext

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
BEST = "best.safetensors"
LAST = "last.pt"
STATE_VERSION = 1


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous copy of a module's state (what best.safetensors holds)."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def rng_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The loop's generator and torch's global generator (dropout) of this process."""
    return {"gen": gen.get_state(), "torch": torch.get_rng_state()}


def restore_rng(gen: torch.Generator, state: dict[str, torch.Tensor]) -> None:
    """Put back what rng_state() captured."""
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch"])


@dataclass
class Checkpoints:
    """The checkpoint folder of a run directory; only the main process writes it."""

    root: Path
    write: bool = True

    @property
    def folder(self) -> Path:
        """checkpoints/ inside the run directory."""
        return self.root / CHECKPOINT_DIR

    def save_best(self, state: dict[str, torch.Tensor], epoch: int) -> None:
        """Replace best.safetensors with the weights of `epoch`."""
        if not self.write:
            return
        from safetensors.torch import save_file

        with atomic_path(self.folder / BEST) as tmp:
            save_file({k: v.cpu() for k, v in state.items()}, str(tmp), metadata={"epoch": str(epoch)})

    def load_best(self) -> tuple[dict[str, torch.Tensor], int] | None:
        """The best weights and their epoch, or None when none were written yet."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = self.folder / BEST
        if not path.is_file():
            return None
        with safe_open(str(path), "pt") as fh:
            epoch = int((fh.metadata() or {}).get("epoch", 0))
        return load_file(str(path)), epoch

    def save_last(self, payload: dict[str, Any]) -> None:
        """Replace last.pt with the state after the epoch just finished."""
        if not self.write:
            return
        with atomic_path(self.folder / LAST) as tmp:
            torch.save({"version": STATE_VERSION, **payload}, tmp)

    def load_last(self) -> dict[str, Any]:
        """The state saved by save_last(); InputError when there is none or it cannot be read."""
        path = self.folder / LAST
        if not path.is_file():
            raise InputError(f"nothing to resume in {self.root}: {CHECKPOINT_DIR}/{LAST} not found (it is written "
                             "after every epoch of a run started by this version of mmedge)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: one clear message
            raise InputError(f"cannot read {path} to resume: {type(exc).__name__}: {exc}") from exc
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise InputError(f"{path} is not a checkpoint this mmedge can resume (version "
                             f"{state.get('version') if isinstance(state, dict) else '?'}, expected {STATE_VERSION})")
        return state


def check_resumable(state: dict[str, Any], digest: str, world_size: int, path: Path) -> None:
    """InputError unless the checkpoint was written by the same config and the same number of processes."""
    if state.get("config_digest") != digest:
        raise InputError(f"cannot resume {path}: it was trained with another configuration (digest "
                         f"{state.get('config_digest')}, now {digest}); resume with the same flags and config, "
                         "or train into a new --out")
    if int(state.get("world_size", 1)) != world_size:
        raise InputError(f"cannot resume {path}: it was trained by {state.get('world_size')} process(es), now "
                         f"{world_size}; resume with the same --nproc_per_node")


@dataclass
class TrainSession:
    """What a phase's fit shares with the run around it: checkpoints, the state to resume, the process group."""

    checkpoints: Checkpoints | None = None
    resume: dict[str, Any] | None = None  # last.pt (+ "best") of the phase being resumed
    dist: DistContext = field(default_factory=DistContext)
    config_digest: str = ""

    def save_best(self, state: dict[str, torch.Tensor], epoch: int) -> None:
        """best.safetensors, when this run writes checkpoints."""
        if self.checkpoints is not None and self.dist.is_main:
            self.checkpoints.save_best(state, epoch)

    def save_last(self, payload: dict[str, Any], gen: torch.Generator) -> None:
        """last.pt with every rank's RNG state (a collective: every rank calls it)."""
        rngs = self.dist.gather(rng_state(gen))
        if self.checkpoints is not None and self.dist.is_main:
            self.checkpoints.save_last({**payload, "rng": rngs, "world_size": self.dist.world_size,
                                        "config_digest": self.config_digest})
