"""The on-disk cache of frozen-encoder features: hits, and invalidation on data/weights/spec changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from ft_helpers import make_model, same, snapshot, synthetic_split

from mmedge.cache_dirs import CACHE_ENV
from mmedge.models.encoders import ENCODERS, ImageCNNEncoder, register_encoder
from mmedge.models.presets import preset_config
from mmedge.specs import ImageSpec, Preprocessing
from mmedge.train.cache import EmbeddingStore, default_cache_dir
from mmedge.train.loop import split_features
from mmedge.train.run import train_run


def test_hit_then_invalidation(tmp_path: Path) -> None:
    """Second call hits; changed inputs, BatchNorm statistics or preprocessing spec miss."""
    model = make_model({"image"})
    data = synthetic_split(12, 0, "d")
    spec = Preprocessing(image=ImageSpec(32, 1, [0.5], [0.5]))
    store = EmbeddingStore(tmp_path, spec)
    first = split_features(model, data, {"image"}, store=store)["image"]
    again = split_features(model, data, {"image"}, store=store)["image"]
    assert (store.misses, store.hits) == (1, 1)
    assert torch.equal(first, again)

    data.inputs["pixel_values"][0, 0, 0, 0] += 1.0  # data changed
    split_features(model, data, {"image"}, store=store)
    assert store.misses == 2
    enc: Any = model.encoder("image")
    bn = enc.cnn.features[0][1]
    bn.running_mean += 0.5  # weights (buffers) changed
    split_features(model, data, {"image"}, store=store)
    assert store.misses == 3
    wider = Preprocessing(image=ImageSpec(64, 1, [0.5], [0.5]))
    EmbeddingStore(tmp_path, wider).features(model, "image", data, lambda: first)
    assert store.misses == 3 and len(list(tmp_path.glob("*.npz"))) == 4


def test_damaged_file_is_recomputed(tmp_path: Path) -> None:
    """An unreadable cache file is ignored and rewritten."""
    model = make_model({"image"})
    data = synthetic_split(8, 0, "d")
    store = EmbeddingStore(tmp_path)
    split_features(model, data, {"image"}, store=store)
    [path] = tmp_path.glob("*.npz")
    path.write_bytes(b"garbage")
    split_features(model, data, {"image"}, store=store)
    assert store.misses == 2 and store.hits == 0


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$MMEDGE_CACHE_DIR picks the folder; 'off' disables the cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path / "embeddings"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_dir() is None and EmbeddingStore.default() is None


def _pretrained_cnn(cfg: object, vocab: int) -> ImageCNNEncoder:
    c = cfg.image  # type: ignore[attr-defined]
    enc = ImageCNNEncoder(c.channels, c.size, cfg.embed_dim)  # type: ignore[attr-defined]
    setattr(enc, "pretrained", True)  # noqa: B010
    return enc


@pytest.fixture
def pretrained_test_cnn() -> Iterator[None]:
    """Register a stand-in 'pretrained' image encoder for one test."""
    register_encoder("image", "pretrained_test_cnn", _pretrained_cnn)
    yield
    ENCODERS.unregister("image/pretrained_test_cnn")


@pytest.mark.usefixtures("pretrained_test_cnn")
def test_second_frozen_run_skips_encoding(tmp_path: Path) -> None:
    """train_run twice in frozen mode: the second run reads every frozen split from the cache."""
    cfg = preset_config("tiny")
    cfg.model.modalities = ["text", "image"]
    cfg.model.image.encoder = "pretrained_test_cnn"
    cfg.limit, cfg.train.mode, cfg.train.epochs = 40, "frozen", 1
    first = train_run(cfg, tmp_path / "a", cache_dir=tmp_path / "cache")
    second = train_run(cfg, tmp_path / "b", cache_dir=tmp_path / "cache")
    assert first.metrics["embedding_cache"]["misses"] == 3  # train, val, test
    assert second.metrics["embedding_cache"] == {"dir": str(tmp_path / "cache"), "hits": 3, "misses": 0}
    assert first.metrics["test"] == second.metrics["test"]
    assert first.metrics["phases"] == ["frozen"]


@pytest.mark.usefixtures("pretrained_test_cnn")
def test_frozen_model_state_after_run(tmp_path: Path) -> None:
    """The frozen encoder saved by a run equals a freshly built one with the same seed."""
    from mmedge.train.checkpoint import load_run

    cfg = preset_config("tiny")
    cfg.model.modalities = ["image"]
    cfg.model.image.encoder = "pretrained_test_cnn"
    cfg.limit, cfg.train.mode, cfg.train.epochs = 24, "frozen", 1
    torch.manual_seed(cfg.train.seed)
    fresh = _pretrained_cnn(cfg.model, 0)
    train_run(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    assert same(snapshot(fresh), snapshot(load_run(tmp_path / "run").model.encoder("image")))
