"""train.device: device and DDP backend choice, the clear error without CUDA, device-following augmentation."""

from __future__ import annotations

import logging

import pytest
import torch

from mmedge.config import AudioAugmentConfig, ImageAugmentConfig, RunConfig
from mmedge.errors import BackendError, ConfigError
from mmedge.train import augment
from mmedge.train.device import choose_device, dist_backend, module_device, select_device, to_device
from mmedge.train.distributed import choose_backend, process_group


@pytest.mark.parametrize(("requested", "available", "count", "rank", "expected"), [
    ("auto", False, 0, 0, "cpu"),
    ("auto", True, 1, 0, "cuda:0"),
    ("auto", True, 4, 3, "cuda:3"),  # under torchrun: cuda:LOCAL_RANK
    ("cpu", True, 2, 1, "cpu"),
    ("cuda", True, 2, 1, "cuda:1"),
])
def test_device_choice(requested: str, available: bool, count: int, rank: int, expected: str) -> None:
    assert choose_device(requested, available, count, rank) == expected


def test_more_local_processes_than_gpus_is_an_error() -> None:
    assert choose_device("auto", True, 4, 1, local_world=4) == "cuda:1"
    with pytest.raises(BackendError, match="2 processes on this node but torch sees 1 GPU"):  # rank 0 too
        choose_device("auto", True, 1, 0, local_world=2)
    assert choose_device("auto", False, 0, 1, local_world=2) == "cpu"  # no GPU at all: the CPU (gloo)
    for requested, rank in (("cuda", 0), ("cuda", 1)):
        with pytest.raises(BackendError, match="2 processes on this node"):
            choose_device(requested, True, 1, rank, local_world=2)


def test_cuda_without_a_gpu_is_an_error_never_a_cpu_run() -> None:
    with pytest.raises(BackendError, match="no CUDA GPU"):
        choose_device("cuda", False)
    with pytest.raises(BackendError, match="LOCAL_RANK 2"):
        choose_device("cuda", True, 2, 2)
    with pytest.raises(ConfigError, match=r"train\.device"):
        choose_device("gpu", True)
    cfg = RunConfig()
    cfg.train.device = "gpu"
    with pytest.raises(ConfigError, match=r"train\.device must be one of auto, cpu, cuda"):
        cfg.validate()


def test_backend_follows_the_device() -> None:
    assert dist_backend("cuda:0") == "nccl" and dist_backend("cpu") == "gloo"
    assert choose_backend("cuda:1", None) == "nccl" and choose_backend("cpu", None) == "gloo"
    assert choose_backend("cuda:0", "gloo") == "gloo"  # gloo also carries CUDA tensors, when asked for
    with pytest.raises(ConfigError, match="needs gloo"):
        choose_backend("cpu", "nccl")


def test_selection_without_cuda(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="mmedge.train.device"):
        assert select_device("auto") == torch.device("cpu")
    assert "training on the CPU (train.device=auto, no CUDA GPU seen)" in caplog.text
    with pytest.raises(BackendError):
        select_device("cuda")
    with process_group("cpu") as ctx:  # a single process on the CPU: gloo would be its backend
        assert ctx.device == torch.device("cpu") and not ctx.active
    model = torch.nn.Linear(2, 2)
    assert module_device(model) == torch.device("cpu") and module_device(torch.nn.ReLU()) == torch.device("cpu")
    t = torch.ones(2)
    assert to_device({"x": t}, torch.device("cpu"))["x"] is t


def test_augmentation_follows_the_inputs_device() -> None:
    """On the meta device any tensor made on the CPU and mixed in raises; the outputs stay on the input's device."""
    gen, meta = torch.Generator().manual_seed(0), torch.device("meta")
    outs = [
        augment.augment_waveform(torch.zeros(4, 12000, device=meta), 8000, 8000, AudioAugmentConfig(), gen),
        augment.spec_augment(torch.zeros(4, 1, 32, 60, device=meta), AudioAugmentConfig(), gen),
        augment.augment_image(torch.zeros(4, 1, 16, 16, device=meta), ImageAugmentConfig(hflip=True, vflip=True),
                              gen),
        augment.token_dropout(torch.ones(4, 8, dtype=torch.int64, device=meta), 0.2, gen),
    ]
    assert all(o.device == meta for o in outs)
    assert outs[0].shape == (4, 8000)
