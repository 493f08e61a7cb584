"""ViT-family (vit, deit) and ConvNeXt-family (convnext, convnextv2) image encoders from `hf:PATH`.

Input: pixels resized to the processor's size and normalized with its mean/std (recorded in
bundle.json's image spec, reproduced by the torch-free preprocessing). Output: ViT's [CLS] token after
the final LayerNorm; ConvNeXt's pooled output (global average + LayerNorm); then a trainable Linear.
Blocks: embeddings, then each transformer layer (ViT) or each stage (ConvNeXt); the final norm trains
with the last block.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.models.hf.architecture import source_folder
from mmedge.models.hf.base import HFEncoder, grouped, layer_list, load_hf_model
from mmedge.models.hf.folder import HFFolder
from mmedge.specs import TensorSpec


class ClsTokenBackbone(nn.Module):
    """ViT: the [CLS] token of the last hidden state (after the model's final LayerNorm)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, hidden]."""
        return self.model(pixel_values=pixel_values).last_hidden_state[:, 0]  # type: ignore[no-any-return]


class PooledBackbone(nn.Module):
    """ConvNeXt: the model's pooled output (global average pooling + LayerNorm)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, hidden]."""
        return self.model(pixel_values=pixel_values).pooler_output.flatten(1)  # type: ignore[no-any-return]


class HFImageEncoder(HFEncoder):
    """ViT or ConvNeXt (pretrained) backbone, pooled, Linear hidden → D."""

    modality = "image"

    def __init__(self, folder: HFFolder, embed_dim: int, channels: int, size: int, weights: bool = True) -> None:
        self.family = folder.family
        backbone: nn.Module
        if folder.family == "vit":
            model = load_hf_model(folder, weights)
            config: Any = model.config
            features, backbone = int(config.hidden_size), ClsTokenBackbone(model)
        else:
            model = load_hf_model(folder, weights)
            config = model.config
            features, backbone = int(config.hidden_sizes[-1]), PooledBackbone(model)
        super().__init__(folder, embed_dim, features)
        self.channels, self.size = channels, size
        self.backbone = backbone

    def input_specs(self) -> list[TensorSpec]:
        """pixel_values float32 [batch, C, H, W]."""
        return [TensorSpec("pixel_values", "float32", ("batch", self.channels, self.size, self.size),
                           batch_range())]

    def blocks(self) -> list[nn.Module]:
        """Embeddings, then layers (ViT) or stages (ConvNeXt); the final norm joins the last one."""
        model: Any = self.backbone.model
        if self.family == "vit":
            return grouped([model.embeddings, *layer_list(model, "layers", "encoder.layer")], [model.layernorm])
        return grouped([model.embeddings, *layer_list(model, "encoder.stages")], [model.layernorm])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, D]."""
        return self.proj(self.backbone(pixel_values))  # type: ignore[no-any-return]


def build_hf_image(c: ModelConfig, _vocab: int) -> HFImageEncoder:
    """Registry entry 'image/hf': the ViT/ConvNeXt encoder of `image.encoder = hf:PATH`."""
    folder, weights = source_folder(c.image.encoder, "image")
    return HFImageEncoder(folder, c.embed_dim, c.image.channels, c.image.size, weights)
