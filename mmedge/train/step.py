"""One training batch's loss as a module, so the same code runs alone or wrapped in DDP.

DistributedDataParallel synchronises gradients only for computations inside its wrapped module's
forward, so embedding, fusion and both losses happen in TrainStep.forward.
"""

from __future__ import annotations

import torch
from torch import nn

from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.cache import project_features


def embed_inputs(model: MultimodalClassifier, inputs: dict[str, torch.Tensor],
                 cached: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Embeddings per modality of one batch; modalities in `cached` project their frozen-part features."""
    embeddings = []
    for m in model.modalities:
        enc = model.encoder(m)
        if m in cached:
            embeddings.append(project_features(enc, cached[m]))
        else:
            embeddings.append(enc(*(inputs[s.name] for s in enc.input_specs())))
    return embeddings


def unimodal_loss(model: MultimodalClassifier, embeddings: list[torch.Tensor], available: torch.Tensor,
                  labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the head with each single available modality present.

    Trains every encoder (and the head) to stand on its own, so the fused model keeps close to
    each modality's standalone accuracy when the others are missing; the encoders run once.
    """
    losses = []
    for j in range(len(model.modalities)):
        rows = available[:, j] > 0
        if bool(rows.any()):
            only = torch.zeros_like(available[rows])
            only[:, j] = 1.0
            logits = model.head(*(e[rows] for e in embeddings), only)
            losses.append(nn.functional.cross_entropy(logits, labels[rows]))
    return torch.stack(losses).mean()


class TrainStep(nn.Module):
    """Loss of one batch: fused cross-entropy under `present` (+ weighted unimodal loss)."""

    def __init__(self, model: MultimodalClassifier, unimodal_weight: float) -> None:
        super().__init__()
        self.model = model
        self.unimodal_weight = unimodal_weight

    def forward(self, inputs: dict[str, torch.Tensor], cached: dict[str, torch.Tensor], present: torch.Tensor,
                available: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The batch's loss (a scalar)."""
        model = self.model
        embeddings = embed_inputs(model, inputs, cached)
        loss = nn.functional.cross_entropy(model.head(*embeddings, present), labels)
        if self.unimodal_weight > 0 and len(model.modalities) > 1:
            loss = loss + self.unimodal_weight * unimodal_loss(model, embeddings, available, labels)
        return loss
