"""Frozen-encoder features: which part of an encoder is frozen, and an on-disk cache of its outputs.

A frozen pretrained encoder's backbone features depend only on (data, preprocessing, backbone
weights), so a second run skips encoding. The cache key is a sha256 over the dataset name and
size, a hash of the preprocessed input tensors, the preprocessing spec, the encoder name and
class, and a hash of the frozen weights (parameters and buffers, e.g. BatchNorm statistics):
any change there is a different key, never a stale hit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmedge.cache_dirs import cache_folder
from mmedge.io import atomic_path
from mmedge.models.classifier import MultimodalClassifier
from mmedge.models.encoders import Encoder
from mmedge.models.pretrained import PretrainedEncoder
from mmedge.serialize import to_json
from mmedge.specs import Preprocessing
from mmedge.train.tensors import SplitTensors

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def frozen_part(enc: Encoder) -> nn.Module:
    """The pretrained part of an encoder (the backbone; the whole encoder when it has no split)."""
    return enc.backbone if isinstance(enc, PretrainedEncoder) else enc


def encoder_features(enc: Encoder, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Output of the frozen part on named inputs ([B, F] backbone features, or the embedding)."""
    args = [inputs[s.name] for s in enc.input_specs()]
    return enc.backbone_features(*args) if isinstance(enc, PretrainedEncoder) else enc(*args)


def project_features(enc: Encoder, features: torch.Tensor) -> torch.Tensor:
    """Embedding from frozen-part features (the trainable projection; identity without a split)."""
    return enc.project(features) if isinstance(enc, PretrainedEncoder) else features


def tensor_digest(tensors: list[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and bytes of tensors."""
    digest = hashlib.sha256()
    for name, t in tensors:
        arr = t.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
        digest.update(arr.data)
    return digest.hexdigest()


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's state dict (parameters and buffers)."""
    return tensor_digest(sorted(module.state_dict().items()))


def default_cache_dir() -> Path | None:
    """$MMEDGE_CACHE_DIR/embeddings (None when 'off'), else $XDG_CACHE_HOME or ~/.cache, /mmedge/embeddings."""
    return cache_folder("embeddings")


class EmbeddingStore:
    """Frozen-part features of whole splits as .npz files under `root`, keyed by content."""

    def __init__(self, root: str | Path, spec: Preprocessing | None = None) -> None:
        self.root = Path(root)
        self.spec = spec if spec is not None else Preprocessing()
        self.hits = 0
        self.misses = 0

    @classmethod
    def default(cls, spec: Preprocessing | None = None) -> EmbeddingStore | None:
        """The store at default_cache_dir(), or None when the cache is off."""
        root = default_cache_dir()
        return cls(root, spec) if root is not None else None

    def key(self, model: MultimodalClassifier, modality: str, data: SplitTensors) -> str:
        """Content key of (data, preprocessing, encoder, frozen weights)."""
        enc = model.encoder(modality)
        inputs = [(s.name, data.inputs[s.name]) for s in enc.input_specs()]
        identity = {
            "version": CACHE_VERSION, "modality": modality, "dataset": data.name, "n": len(data),
            "inputs": tensor_digest(inputs), "preprocessing": to_json(self.spec.get(modality)) or {},
            "encoder": getattr(model.cfg, modality).encoder, "class": type(enc).__qualname__,
            "weights": weights_digest(frozen_part(enc)),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def features(self, model: MultimodalClassifier, modality: str, data: SplitTensors,
                 compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Cached features of `modality` on `data`, computed (and stored) on a miss."""
        key = self.key(model, modality, data)
        path = self.root / f"{key}.npz"
        cached = self._load(path)
        if cached is not None and len(cached) == len(data):
            self.hits += 1
            log.info("embedding cache hit: %s %s (%s)", modality, data.name or "split", path.name[:12])
            return torch.from_numpy(cached)
        self.misses += 1
        features = compute()
        self._save(path, features, modality, data)
        log.info("embedding cache miss: %s %s encoded and stored (%s)", modality, data.name or "split",
                 path.name[:12])
        return features

    def _load(self, path: Path) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            with np.load(path) as npz:
                return np.asarray(npz["features"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:  # a damaged file is recomputed, not trusted
            log.warning("ignoring unreadable cache file %s (%s)", path, exc)
            return None

    def _save(self, path: Path, features: torch.Tensor, modality: str, data: SplitTensors) -> None:
        meta = json.dumps({"modality": modality, "dataset": data.name, "n": len(data)})
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, features=features.detach().cpu().numpy(), meta=np.array(meta))
        except OSError as exc:  # a read-only or full disk costs speed, not the run
            log.warning("cannot write embedding cache %s (%s)", path, exc)
