"""Multi-process training: `mmedge train` under torchrun (2 processes, gloo) against a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmedge.errors import ConfigError
from mmedge.train.distributed import DistContext, env_rank, state_digest

ARGS = ["train", "--limit", "48", "--epochs", "2", "--modalities", "text,audio", "--json"]


def launcher(tmp_path: Path) -> Path:
    """A script that runs the real CLI (torchrun launches scripts)."""
    path = tmp_path / "launch_mmedge.py"
    path.write_text("from mmedge.cli.main import app\napp(prog_name='mmedge')\n")
    return path


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_match_one(tmp_path: Path):
    script = launcher(tmp_path)
    ddp = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script),
               *ARGS, "--out", "ddp"], tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run([sys.executable, str(script), *ARGS, "--out", "single"], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    multi, one = json.loads(ddp.stdout), json.loads(single.stdout)  # one JSON document: rank 1 printed nothing
    # one run directory, written by rank 0 alone
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["ddp", "single"]
    assert {"run.json", "model.safetensors", "metrics.json", "config.yaml", "checkpoints"} <= {
        p.name for p in (tmp_path / "ddp").iterdir()}
    # identical parameters on both ranks, and they are the saved ones
    dist = multi["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo" and len(set(dist["param_digests"])) == 1
    saved = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    assert dist["param_digests"][0] == digest_of(saved)
    # close to the single-process run: same global batch, each rank half of it
    for a, b in zip(multi["history"], one["history"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=0.05)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=0.05)
    assert abs(multi["test"]["all"]["accuracy"] - one["test"]["all"]["accuracy"]) <= 0.15


def digest_of(state: dict[str, torch.Tensor]) -> str:
    """state_digest of a module holding exactly `state` under the same names."""
    module = torch.nn.Module()
    module.state_dict = lambda: state  # type: ignore[method-assign,assignment,return-value]
    return state_digest(module)


def test_single_process_context_is_a_no_op():
    ctx = DistContext()
    module = torch.nn.Linear(2, 2)
    assert ctx.is_main and not ctx.active and ctx.wrap(module) is module
    assert ctx.mean(3.0, 5.0) == 3.0 and ctx.broadcast({"a": 1}) == {"a": 1} and ctx.gather(7) == [7]
    assert ctx.local_batch(64) == 64 and DistContext(world_size=3).local_batch(64) == 22


def test_shards_cover_every_row_once_per_epoch():
    shards = [DistContext(rank=r, world_size=2).shard(10, seed=0, epoch=1) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(10))
    assert not torch.equal(DistContext(rank=0, world_size=2).shard(10, 0, 2), shards[0])


def test_env_rank(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert env_rank() == (0, 1, 0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert env_rank() == (1, 2, 0)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="invalid torchrun environment"):
        env_rank()


def test_state_digest_sees_every_byte():
    a = torch.nn.Linear(3, 2)
    before = state_digest(a)
    with torch.no_grad():
        a.bias[0] += 1e-7
    assert state_digest(a) != before
