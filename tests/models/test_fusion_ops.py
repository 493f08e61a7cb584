"""Fusion ops: every registered op handles any presence mask in one graph and exports to ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmedge.errors import ConfigError
from mmedge.exporters.onnx_export import export_module
from mmedge.models.classifier import FusionHead
from mmedge.models.fusion import FUSION_OPS, build_fusion
from mmedge.runtime.backends.onnxruntime.runner import OrtRunner
from mmedge.specs import TensorSpec

MODALITIES = ["text", "image", "audio"]


def make_head(op: str) -> FusionHead:
    torch.manual_seed(0)
    head = FusionHead(MODALITIES, embed_dim=8, fusion=op, hidden=16, dropout=0.0, n_labels=4)
    with torch.no_grad():
        head.missing.normal_()
    return head.eval()


def inputs(batch: int, present: list[list[float]]) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    embeddings = tuple(torch.randn(batch, 8, generator=gen) for _ in MODALITIES)
    return (*embeddings, torch.tensor(present, dtype=torch.float32))


@pytest.mark.parametrize("op", sorted(FUSION_OPS))
def test_absent_embedding_values_do_not_matter(op: str):
    head = make_head(op)
    args = inputs(2, [[1, 0, 1], [0, 1, 0]])
    changed = (args[0], args[1] * 0 + 5.0, args[2], args[3])  # image is absent in row 0
    with torch.no_grad():
        a, b = head(*args), head(*changed)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])  # row 1 has image present: its value matters


@pytest.mark.parametrize("op", sorted(FUSION_OPS))
def test_exports_and_matches_torch(op: str, tmp_path: Path):
    head = make_head(op)
    specs = head.input_specs()
    out = [TensorSpec("logits", "float32", ("batch", 4))]
    path = export_module(head, specs, out, inputs(3, [[1, 1, 1], [1, 0, 0], [0, 0, 1]]), tmp_path / f"{op}.onnx")
    args = inputs(5, [[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    feed = {s.name: a.numpy() for s, a in zip(specs, args, strict=True)}
    with OrtRunner(path, specs, out) as runner:
        got = runner.infer(feed)["logits"]
    with torch.no_grad():
        np.testing.assert_allclose(got, head(*args).numpy(), atol=1e-5)


def test_only_product_requires_every_modality():
    assert {op for op in FUSION_OPS if build_fusion(op, 3, 8).requires_all} == {"product"}


def test_unknown_fusion():
    with pytest.raises(ConfigError, match="unknown fusion 'nope'"):
        build_fusion("nope", 3, 8)
