"""`mmedge train`: data → tokenizer → preprocessing → model → fit → metrics → run directory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmedge.config import ModelConfig, RunConfig
from mmedge.data.manifest import check_trainable, resolve_dataset
from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Dataset
from mmedge.data.tokenizer import train_wordpiece
from mmedge.errors import InputError
from mmedge.models.classifier import MultimodalClassifier
from mmedge.specs import AudioSpec, ImageSpec, Preprocessing, TextSpec
from mmedge.train.cache import EmbeddingStore
from mmedge.train.checkpoint import save_run
from mmedge.train.loop import History, ProgressFn, evaluate, fit
from mmedge.train.modes import build_plans
from mmedge.train.tensors import tensorize

log = logging.getLogger(__name__)
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class TrainResult:
    """Where the run was written and what it measured."""

    out_dir: Path
    metrics: dict[str, Any]
    history: History
    seconds: float


def preprocessing_spec(model: ModelConfig) -> Preprocessing:
    """The per-modality preprocessing spec stored in the run and the bundle."""
    im, au, mods = model.image, model.audio, model.modalities
    return Preprocessing(
        text=TextSpec(TOKENIZER_FILE, model.text.max_length) if "text" in mods else None,
        image=ImageSpec(im.size, im.channels, list(im.mean), list(im.std), im.resize) if "image" in mods else None,
        audio=AudioSpec(au.sample_rate, au.clip_seconds) if "audio" in mods else None)


def prepare_tokenizer(cfg: RunConfig, train: Dataset, out_dir: Path) -> int:
    """Write tokenizer.json into the run (trained on the data, or the pretrained one); return vocab size."""
    if "text" not in cfg.model.modalities:
        return 0
    if cfg.model.text.encoder != "bag":
        from mmedge.models.pretrained import copy_pretrained_tokenizer

        return copy_pretrained_tokenizer(cfg.model.text.encoder, out_dir / TOKENIZER_FILE)
    texts = [s.text for s in train.samples if s.text]
    if not texts:
        raise InputError("the training data has no text, but 'text' is among model.modalities")
    train_wordpiece(texts, cfg.model.text.vocab_size, out_dir / TOKENIZER_FILE)
    from mmedge.data.tokenizer import TextTokenizer

    return TextTokenizer(out_dir / TOKENIZER_FILE, cfg.model.text.max_length).vocab_size


def load_splits(cfg: RunConfig) -> dict[str, Dataset]:
    """train/val/test datasets of the configured data; InputError if the train split cannot train a classifier."""
    splits = {split: resolve_dataset(cfg.data, split, limit=cfg.limit) for split in ("train", "val", "test")}
    check_trainable(splits["train"], str(cfg.data))
    return splits


def embedding_store(spec: Preprocessing, cache_dir: str | Path | None) -> EmbeddingStore | None:
    """The frozen-feature cache: `cache_dir`, else $MMEDGE_CACHE_DIR or ~/.cache/mmedge/embeddings."""
    return EmbeddingStore(cache_dir, spec) if cache_dir is not None else EmbeddingStore.default(spec)


def train_run(cfg: RunConfig, out_dir: str | Path, progress: ProgressFn | None = None, *,
              cache_dir: str | Path | None = None) -> TrainResult:
    """Train the configured model (every phase of its mode) and write the run directory."""
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    splits = load_splits(cfg)
    labels = splits["train"].labels
    vocab = prepare_tokenizer(cfg, splits["train"], out)
    spec = preprocessing_spec(cfg.model)
    pre = Preprocessor(cfg.model.modalities, spec, root=out)
    tensors = {name: tensorize(ds, pre) for name, ds in splits.items()}
    model = MultimodalClassifier(cfg.model, len(labels), vocab)
    store = embedding_store(spec, cache_dir)
    plans = build_plans(model, cfg.train)
    history = History()
    for plan in plans:
        log.info("phase %s: %d epochs", plan.phase, plan.epochs or cfg.train.epochs)
        fit(model, tensors["train"], tensors["val"], cfg.train, plan, len(labels), progress, history=history,
            store=store)
    test = evaluate(model, tensors["test"], len(labels), store=store, cached=plans[-1].frozen)
    seconds = time.perf_counter() - started
    metrics = {"test": test, "best_epoch": history.best_epoch, "val_accuracy": history.best_val_accuracy,
               "train_seconds": round(seconds, 2), "mode": cfg.train.mode, "phases": history.phases,
               "history": history.epochs, "requires_all_modalities": model.head.requires_all}
    if store is not None:
        metrics["embedding_cache"] = {"dir": str(store.root), "hits": store.hits, "misses": store.misses}
    save_run(out, cfg, model, labels, spec, vocab, metrics)
    log.info("trained %s (%s) in %.1fs: test accuracy %.4f", cfg.name, cfg.train.mode, seconds,
             test["all"]["accuracy"])
    return TrainResult(out, metrics, history, seconds)
