"""DDP with `hf:` encoders: LayerDrop is switched off (ranks would skip different layers) and training runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from mmedge.train.distributed import DistContext, ddp_options, no_layerdrop


def tiny_wav2vec2(layerdrop: float, mask_time_prob: float = 0.0) -> nn.Module:
    """A random 4-layer Wav2Vec2Model with LayerDrop (as config.json's default 0.1 would)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                                        intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4),
                                        conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                                        num_conv_pos_embedding_groups=2, layerdrop=layerdrop,
                                        mask_time_prob=mask_time_prob))


class Pooled(nn.Module):
    """Waveform → mean of the last hidden states (what the hf: audio encoder does)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(input_values=wave).last_hidden_state.mean()  # type: ignore[no-any-return]


def test_layerdrop_is_switched_off_for_wav2vec2_and_whisper():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    w2v = Pooled(tiny_wav2vec2(0.1))
    whisper = WhisperEncoder(WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2,
                                           encoder_ffn_dim=32, num_mel_bins=8, max_source_positions=8,
                                           encoder_layerdrop=0.2))
    assert ddp_options(w2v) == {}  # every trainable parameter is used in every step: no unused-parameter search
    assert w2v.model.config.layerdrop == 0.0  # type: ignore[union-attr]
    assert ddp_options(Pooled(tiny_wav2vec2(0.1, mask_time_prob=0.05))) == {"find_unused_parameters": True}
    assert no_layerdrop(whisper) == ["WhisperEncoder"]
    assert whisper.layerdrop == 0.0 and whisper.config.encoder_layerdrop == 0.0
    assert no_layerdrop(w2v) == [] and ddp_options(nn.Linear(2, 2)) == {}  # nothing to change: no options


def _train_ranks(rank: int, world: int, port: int, out: str) -> None:
    """Three DDP steps (gloo) of a wav2vec2 with LayerDrop 0.5; every rank draws its own skips."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        step = DistContext(rank, world, 0, "gloo").wrap(Pooled(tiny_wav2vec2(0.5)).train())
        opt = torch.optim.SGD(step.parameters(), lr=0.1)
        torch.manual_seed(100 + rank)  # different LayerDrop draws per rank, as in real DDP training
        for _ in range(3):
            opt.zero_grad()
            step(torch.randn(2, 400)).backward()
            opt.step()
        Path(out, f"ok{rank}").write_text("ok")
        # ranks end together before gloo is torn down, as mmedge.train.run does; without it one CI run's
        # rank 0 aborted in teardown ("terminate called without an active exception")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_trains_an_hf_encoder_with_layerdrop(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        torch.multiprocessing.spawn(_train_ranks, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    except torch.multiprocessing.ProcessRaisedException as exc:
        pytest.fail(f"DDP failed: {str(exc).strip().splitlines()[-1]}")
    assert {p.name for p in tmp_path.iterdir()} == {"ok0", "ok1"}
