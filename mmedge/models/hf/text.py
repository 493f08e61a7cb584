"""BERT-family text encoders from `hf:PATH` (bert, roberta, xlm-roberta, electra, distilbert).

Input: the folder's own tokenizer.json (copied into the run and the bundle, like MiniLM's), ids and
attention mask. Output: attention-masked mean of the last hidden states (as sentence-transformers
pools), then a trainable Linear. Blocks for partial fine-tuning: embeddings, then each layer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmedge.bundle import batch_range
from mmedge.config import ModelConfig
from mmedge.errors import InputError
from mmedge.io import atomic_path
from mmedge.models.hf.architecture import source_folder
from mmedge.models.hf.base import HFEncoder, layer_list, load_hf_model
from mmedge.models.hf.folder import TOKENIZER_FILE, HFFolder, hf_folder
from mmedge.models.pretrained import masked_mean
from mmedge.specs import TensorSpec


class MaskedMeanBackbone(nn.Module):
    """A transformer text model + attention-masked mean pooling → [B, hidden]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] ids and mask → [B, hidden]."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)


class HFTextEncoder(HFEncoder):
    """BERT-family encoder (pretrained), masked mean pooling, Linear hidden → D."""

    modality, family = "text", "bert"

    def __init__(self, folder: HFFolder, embed_dim: int, max_length: int, weights: bool = True) -> None:
        model = load_hf_model(folder, weights)
        config: Any = model.config
        super().__init__(folder, embed_dim, int(getattr(config, "hidden_size", getattr(config, "dim", 0))))
        self.max_length = max_length
        self.backbone = MaskedMeanBackbone(model)

    def input_specs(self) -> list[TensorSpec]:
        """input_ids and attention_mask, int64 [batch, seq]."""
        ranges = {**batch_range(), "seq": (1, self.max_length, self.max_length)}
        return [TensorSpec("input_ids", "int64", ("batch", "seq"), ranges),
                TensorSpec("attention_mask", "int64", ("batch", "seq"), ranges)]

    def blocks(self) -> list[nn.Module]:
        """Embeddings, then the transformer layers in order."""
        model: Any = self.backbone.model
        return [model.embeddings, *layer_list(model, "encoder.layer", "transformer.layer", "layers", "encoder.layers")]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] → [B, D]."""
        return self.proj(self.backbone(input_ids, attention_mask))  # type: ignore[no-any-return]


def build_hf_text(c: ModelConfig, _vocab: int) -> HFTextEncoder:
    """Registry entry 'text/hf': the BERT-family encoder of `text.encoder = hf:PATH`."""
    folder, weights = source_folder(c.text.encoder, "text")
    return HFTextEncoder(folder, c.embed_dim, c.text.max_length, weights)


def copy_hf_tokenizer(name: str, dest: str | Path) -> int:
    """Copy the folder's tokenizer.json to `dest` (atomic); return its vocabulary size."""
    from tokenizers import Tokenizer

    folder = hf_folder(name, "text")
    src = folder.path / TOKENIZER_FILE
    try:
        vocab = int(Tokenizer.from_file(str(src)).get_vocab_size())
    except Exception as exc:  # the tokenizers library raises a bare Exception on a bad file
        raise InputError(f"{src}: not a readable tokenizer.json ({exc})") from exc
    model_vocab = int(folder.config.get("vocab_size", vocab))
    if vocab > model_vocab:
        raise InputError(f"{folder.path}: tokenizer.json has {vocab} tokens, the model only {model_vocab} "
                         "embeddings")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return vocab
