"""Fusion ops over modality embeddings, in a small registry.

Every op takes `tokens` [B, M, D] (missing modalities already replaced by their learned
"missing" embedding) and `present` [B, M] (float 0/1) and returns [B, out_dim]. No Python
branching on presence: masks are arithmetic, so one graph serves every modality subset.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mmedge.errors import ConfigError
from mmedge.registry import Registry


class FusionOp(nn.Module):
    """Base class; `requires_all` declares an op that cannot cope with a missing modality."""

    requires_all = False
    out_dim: int

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """[B, M, D], [B, M] → [B, out_dim]."""
        raise NotImplementedError


class ConcatFusion(FusionOp):
    """Concatenate all modality tokens and the presence mask."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = n * dim + n

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Flatten tokens, append the mask."""
        return torch.cat([tokens.flatten(1), present], dim=1)


class SumFusion(FusionOp):
    """Sum of modality tokens (missing ones contribute their learned embedding)."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Sum over modalities."""
        return tokens.sum(dim=1)


class MaskedMeanFusion(FusionOp):
    """Mean over the present modalities only."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Presence-weighted mean."""
        weights = present.unsqueeze(-1)
        return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class ProductFusion(FusionOp):
    """Element-wise product of tokens: poor with missing inputs, so it requires all modalities."""

    requires_all = True

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Product over modalities."""
        return torch.prod(tokens, dim=1)


class GatedFusion(FusionOp):
    """GMU-style gating: h = Σ z_m · tanh(W_m x_m), z = softmax over present modalities."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.transforms = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n))
        self.gate = nn.Linear(n * dim, n)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Gated sum of transformed tokens."""
        hidden = torch.stack([torch.tanh(t(tokens[:, i])) for i, t in enumerate(self.transforms)], dim=1)
        scores = self.gate(tokens.flatten(1)) + (present - 1.0) * 1e4
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (weights * hidden).sum(dim=1)


class AttentionFusion(FusionOp):
    """A learned query attends over modality tokens (+ modality-type embeddings), masked by presence."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.type_embedding = nn.Parameter(torch.randn(n, dim) * 0.02)
        self.query = nn.Parameter(torch.randn(dim) * 0.02)
        self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Single-query masked attention."""
        x = tokens + self.type_embedding
        scores = (self.key(x) * self.query).sum(dim=-1) * self.scale + (present - 1.0) * 1e4
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return self.out((weights * self.value(x)).sum(dim=1))


FUSION_OPS: Registry[Callable[[int, int], FusionOp]] = Registry("fusion op", {
    "concat": "mmedge.models.fusion:ConcatFusion",
    "sum": "mmedge.models.fusion:SumFusion",
    "mean": "mmedge.models.fusion:MaskedMeanFusion",
    "product": "mmedge.models.fusion:ProductFusion",
    "gated": "mmedge.models.fusion:GatedFusion",
    "attention": "mmedge.models.fusion:AttentionFusion",
})


def build_fusion(name: str, n_modalities: int, dim: int) -> FusionOp:
    """Instantiate a registered fusion op."""
    if name not in FUSION_OPS:
        raise ConfigError(f"unknown fusion '{name}' (choose from: {', '.join(FUSION_OPS.names())})")
    return FUSION_OPS.get(name)(n_modalities, dim)
