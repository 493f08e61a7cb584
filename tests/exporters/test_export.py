"""Export: each component is a valid ONNX that matches PyTorch on real samples, with dynamic axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mmedge.bundle import Bundle
from mmedge.runtime.backends.onnxruntime.runner import OrtRunner
from mmedge.specs import HEAD, embedding_name
from mmedge.train.checkpoint import load_run


def test_every_component_passes_the_full_checker(tiny_bundle_pristine: Path):
    bundle = Bundle.load(tiny_bundle_pristine)
    for name in bundle.components:
        model = onnx.load(str(bundle.artifact_path(name, "fp32")))
        onnx.checker.check_model(model, full_check=True)
        assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)


@pytest.mark.parametrize(("batch", "seq"), [(1, 3), (5, 16), (7, 9)])
def test_dynamic_batch_and_sequence_match_torch(tiny_run: Path, tiny_bundle_pristine: Path, batch: int, seq: int):
    run = load_run(tiny_run)
    bundle = Bundle.load(tiny_bundle_pristine)
    rng = np.random.default_rng(batch * 100 + seq)
    ids = rng.integers(4, run.vocab_size, size=(batch, seq)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[0, seq // 2 :] = 0  # a padded row
    ids[mask == 0] = 0
    feeds = {
        "text": {"input_ids": ids, "attention_mask": mask},
        "image": {"pixel_values": rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)},
        "audio": {"waveform": (rng.standard_normal((batch, 8000)) * 0.1).astype(np.float32)},
    }
    embeddings = {}
    for m, feed in feeds.items():
        comp = bundle.components[m]
        with OrtRunner(bundle.artifact_path(m, "fp32"), comp.inputs, comp.outputs) as runner:
            got = runner.infer(feed)[embedding_name(m)]
        with torch.no_grad():
            want = run.model.encoder(m)(*(torch.from_numpy(feed[s.name]) for s in comp.inputs)).numpy()
        assert got.shape == (batch, run.config.model.embed_dim)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        embeddings[embedding_name(m)] = got
    present = rng.integers(0, 2, size=(batch, 3)).astype(np.float32)
    head = bundle.components[HEAD]
    with OrtRunner(bundle.artifact_path(HEAD, "fp32"), head.inputs, head.outputs) as runner:
        logits = runner.infer({**embeddings, "present": present})["logits"]
    with torch.no_grad():
        want = run.model.head(*(torch.from_numpy(embeddings[embedding_name(m)]) for m in feeds),
                              torch.from_numpy(present)).numpy()
    np.testing.assert_allclose(logits, want, atol=1e-4, rtol=0)


def test_export_leaves_no_temp_files(tiny_bundle_pristine: Path):
    assert not [p for p in tiny_bundle_pristine.rglob("*") if p.name.endswith(".tmp")]
