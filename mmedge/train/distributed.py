"""Multi-process training under `torchrun`: process group, DDP wrapping, sharding, reductions.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `mmedge train` then joins the process group (NCCL when
training on CUDA, each rank on cuda:LOCAL_RANK; gloo on the CPU), shards each epoch's training rows with
DistributedSampler, and wraps the loss module in DistributedDataParallel so gradients are averaged
in backward. `train.batch_size` stays the global batch (each rank takes its share), so a config
trains alike on 1 or N processes. Rank 0 alone writes the run directory and logs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmedge.errors import ConfigError
from mmedge.train.device import dist_backend, select_device

log = logging.getLogger(__name__)
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
OPTIONAL_PARAMETERS = ("masked_spec_embed",)  # hf: parameters a training step may leave unused


def env_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    try:
        rank, world, local = (int(os.environ.get(k, d)) for k, d in zip(ENV_KEYS, ("0", "1", "0"), strict=True))
    except ValueError as exc:
        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers (set by torchrun): {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"invalid torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def is_main_process() -> bool:
    """Whether this process is rank 0 (always, outside torchrun)."""
    return env_rank()[0] == 0


@dataclass
class DistContext:
    """This process's place in the job; every method is a no-op for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.active:
            torch.distributed.barrier()

    def mean(self, value: float, weight: float = 1.0) -> float:
        """The `weight`-weighted mean of `value` over ranks (e.g. a loss over each rank's rows)."""
        if not self.active:
            return value
        t = torch.tensor([value * weight, weight], dtype=torch.float64, device=self.device)  # NCCL: CUDA only
        torch.distributed.all_reduce(t)
        return float(t[0] / t[1])

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (picklable objects)."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) everywhere: each rank's last batch moved its own."""
        if self.active:
            for buf in module.buffers():
                torch.distributed.broadcast(buf, src=0)

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` in DistributedDataParallel (gradients averaged across ranks), or as is."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        options = ddp_options(module)
        if self.device.type == "cuda":
            return DistributedDataParallel(module, device_ids=[self.device.index], **options)
        return DistributedDataParallel(module, **options)

    def shard(self, n: int, seed: int, epoch: int) -> torch.Tensor:
        """This rank's shuffled share of rows 0..n for `epoch` (DistributedSampler: equal length per rank)."""
        from torch.utils.data import DistributedSampler

        rows: Any = range(n)  # a sized sequence is all the sampler reads
        sampler: DistributedSampler[int] = DistributedSampler(rows, num_replicas=self.world_size, rank=self.rank,
                                                              shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), dtype=torch.int64)

    def local_batch(self, batch_size: int) -> int:
        """Rows per rank per step, so the global batch stays `batch_size`."""
        return max(1, -(-batch_size // self.world_size))


def no_layerdrop(module: nn.Module) -> list[str]:
    """Set LayerDrop to 0 in the `hf:` encoders inside `module`; the names of the submodules changed.

    Under DDP each rank would skip different layers, so their gradients would cover different parameters
    and DDP's reduction fails ("Expected to have finished reduction in the prior iteration").
    """
    changed = []
    for name, sub in module.named_modules():
        config = getattr(sub, "config", None)
        hit = False
        for key in ("layerdrop", "encoder_layerdrop"):  # wav2vec2/HuBERT/WavLM; Whisper's encoder
            if float(getattr(config, key, 0.0) or 0.0) > 0.0:
                setattr(config, key, 0.0)
                hit = True
        if isinstance(getattr(sub, "layerdrop", None), float) and sub.layerdrop > 0.0:  # copied at build time
            sub.layerdrop = 0.0
            hit = True
        if hit:
            changed.append(name or type(sub).__name__)
    return changed


def ddp_options(module: nn.Module) -> dict[str, Any]:
    """DistributedDataParallel keyword arguments for `module`, after making its `hf:` encoders DDP-safe.

    LayerDrop is switched off (logged). find_unused_parameters is on only when a trainable parameter
    may legitimately sit out a step: wav2vec2's masked_spec_embed (used only when SpecAugment draws a
    time mask); frozen parameters (requires_grad False) never count.
    """
    changed = no_layerdrop(module)
    if changed:
        log.warning("DDP: LayerDrop set to 0 in %s (ranks skipping different layers break DDP's gradient "
                    "reduction)", ", ".join(changed))
    optional = any(name.endswith(OPTIONAL_PARAMETERS) and p.requires_grad for name, p in module.named_parameters())
    return {"find_unused_parameters": True} if optional else {}


def state_digest(module: nn.Module) -> str:
    """sha256 over a module's state (names, dtypes, shapes, bytes): equal digests = identical parameters."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _quiet_other_ranks(ctx: DistContext) -> None:
    """Ranks > 0 log errors only (rank 0 speaks for the job)."""
    if not ctx.is_main:
        logging.getLogger("mmedge").setLevel(logging.ERROR)


def choose_backend(device: str, override: str | None) -> str:
    """The process-group backend for `device` (nccl on CUDA, gloo on the CPU), or a valid MMEDGE_DIST_BACKEND."""
    backend = dist_backend(device)
    if override is None or override == backend:
        return backend
    if override == "gloo":  # gloo also runs on CUDA tensors (slower than NCCL): allowed when asked for
        return override
    raise ConfigError(f"MMEDGE_DIST_BACKEND={override}: training on {device} needs {backend} (or gloo)")


@contextmanager
def process_group(device: str = "cpu") -> Iterator[DistContext]:
    """Join torchrun's process group for the block on `device` (train.device), or a single-process context."""
    rank, world, local = env_rank()
    where = select_device(device, local)
    if world == 1:
        yield DistContext(device=where)
        return
    import torch.distributed as dist

    backend = choose_backend(str(where), os.environ.get("MMEDGE_DIST_BACKEND"))
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    ctx = DistContext(rank, world, local, backend, where)
    _quiet_other_ranks(ctx)
    log.info("distributed training: rank %d of %d (%s on %s)", rank, world, backend, where)
    try:
        yield ctx
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()
