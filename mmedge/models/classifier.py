"""The multimodal classifier: encoders per modality → fusion head (missing embeddings, fusion op, MLP)."""

from __future__ import annotations

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.models.encoders import Encoder, build_encoder
from mmedge.models.fusion import build_fusion
from mmedge.specs import TensorSpec, embedding_name


class FusionHead(nn.Module):
    """(embedding per modality, present mask) → logits; its own ONNX component.

    Absent modalities are replaced by a learned "missing" embedding with mask arithmetic,
    so the same graph serves every subset of modalities.
    """

    def __init__(self, modalities: list[str], embed_dim: int, fusion: str, hidden: int, dropout: float,
                 n_labels: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.embed_dim = embed_dim
        self.missing = nn.Parameter(torch.zeros(len(modalities), embed_dim))
        self.fusion = build_fusion(fusion, len(modalities), embed_dim)
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(self.fusion.out_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_labels))

    @property
    def requires_all(self) -> bool:
        """Whether the fusion op needs every modality present."""
        return self.fusion.requires_all

    def input_specs(self) -> list[TensorSpec]:
        """One embedding per modality plus `present`, float32."""
        rng = batch_range()
        specs = [TensorSpec(embedding_name(m), "float32", ("batch", self.embed_dim), rng) for m in self.modalities]
        return [*specs, TensorSpec("present", "float32", ("batch", len(self.modalities)), rng)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """inputs = (*embeddings in modality order, present [B, M]) → logits [B, n_labels]."""
        *embeddings, present = inputs
        tokens = self.norm(torch.stack(embeddings, dim=1))  # [B, M, D]
        mask = present.unsqueeze(-1)
        tokens = tokens * mask + self.missing * (1.0 - mask)
        return self.mlp(self.fusion(tokens, present))


class MultimodalClassifier(nn.Module):
    """Encoders (one per configured modality) and the fusion head."""

    def __init__(self, cfg: ModelConfig, n_labels: int, vocab_size: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.modalities = list(cfg.modalities)
        self.encoders = nn.ModuleDict({m: build_encoder(m, cfg, vocab_size) for m in self.modalities})
        self.head = FusionHead(self.modalities, cfg.embed_dim, cfg.fusion, cfg.head_hidden, cfg.dropout, n_labels)

    def encoder(self, modality: str) -> Encoder:
        """The encoder module of `modality`."""
        enc = self.encoders[modality]
        assert isinstance(enc, Encoder)
        return enc

    def embed(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run every encoder on its named inputs → {modality: [B, D]}."""
        out = {}
        for m in self.modalities:
            enc = self.encoder(m)
            out[m] = enc(*(inputs[s.name] for s in enc.input_specs()))
        return out

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Named inputs of all modalities + present [B, M] → logits."""
        embeddings = self.embed(inputs)
        return self.head(*(embeddings[m] for m in self.modalities), present)
