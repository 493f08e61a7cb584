"""`mmedge train`: data → tokenizer → preprocessing → model → fit → metrics → run directory.

The run directory holds config.yaml (the resolved config, written first), checkpoints/ (best and
last, after every epoch), then run.json, model.safetensors (the best epoch's weights, what export
reads) and metrics.json. Under torchrun every rank runs train_run; rank 0 alone writes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmedge.config import ModelConfig, RunConfig
from mmedge.data.manifest import check_trainable
from mmedge.data.preprocess import Preprocessor
from mmedge.data.sample import Dataset
from mmedge.data.sources import absolute_data, naming_fallback, resolve_splits
from mmedge.data.split import SplitReport
from mmedge.data.tokenizer import train_wordpiece
from mmedge.errors import InputError
from mmedge.models.classifier import MultimodalClassifier
from mmedge.models.hf.architecture import save_architectures
from mmedge.models.hf.resolve import resolve_hf_config, with_hf_specs
from mmedge.specs import AudioSpec, ImageSpec, Preprocessing, TextSpec
from mmedge.train.augment import check_augment
from mmedge.train.cache import EmbeddingStore
from mmedge.train.checkpoint import CHECKPOINT, METRICS_FILE, RUN_META, save_run, write_config
from mmedge.train.crop import crop_applies, long_waveforms
from mmedge.train.distributed import DistContext, process_group, state_digest
from mmedge.train.loop import FitPlan, History, ProgressFn, evaluate, fit
from mmedge.train.modes import build_plans
from mmedge.train.state import CHECKPOINT_DIR, Checkpoints, TrainSession, check_resumable
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
    splits: SplitReport | None = None
    is_main: bool = True  # False on torchrun ranks > 0 (they write nothing; metrics are rank 0's)


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


def load_splits(cfg: RunConfig) -> tuple[dict[str, Dataset], SplitReport]:
    """train/val/test of the configured data and how they were split; InputError if train cannot train."""
    splits, report = resolve_splits(cfg.data, limit=cfg.limit, split_seed=cfg.split_seed)
    check_trainable(splits["train"], str(cfg.data))
    return splits, report


def embedding_store(spec: Preprocessing, cache_dir: str | Path | None) -> EmbeddingStore | None:
    """The frozen-feature cache: `cache_dir`, else $MMEDGE_CACHE_DIR or ~/.cache/mmedge/embeddings."""
    return EmbeddingStore(cache_dir, spec) if cache_dir is not None else EmbeddingStore.default(spec)


def start_session(cfg: RunConfig, out: Path, dist: DistContext, resume: bool,
                  layers: list[str] | None) -> TrainSession:
    """Prepare the run directory (rank 0) and the checkpoints; with `resume`, load last.pt (+ best) for every rank.

    A resume checks the checkpoint before touching anything (a refused resume leaves the run as it was);
    a fresh run first clears what an earlier run in `out` left.
    """
    checkpoints = Checkpoints(out, write=dist.is_main)
    session = TrainSession(checkpoints, None, dist, cfg.digest())
    if resume:
        state = None
        if dist.is_main:
            state = checkpoints.load_last()
            check_resumable(state, cfg.digest(), dist.world_size, checkpoints.folder)
            state["best"] = checkpoints.load_best()
        session.resume = dist.broadcast(state)  # config.yaml already holds this (same-digest) config
    elif dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        clear_earlier_run(out)
        write_config(out, cfg, layers)
    return session


def clear_earlier_run(out: Path) -> None:
    """Remove an earlier run's results and checkpoints from `out`, so a killed fresh run never exports them."""
    stale = [out / RUN_META, out / CHECKPOINT, out / METRICS_FILE]  # run.json first: it marks a finished run
    found = [p.name for p in stale if p.is_file()]
    if (out / CHECKPOINT_DIR).is_dir():
        found.append(CHECKPOINT_DIR)
    if not found:
        return
    log.info("%s: a fresh run replaces an earlier one (removing %s)", out, ", ".join(found))
    for path in stale:
        path.unlink(missing_ok=True)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)


def run_phases(model: MultimodalClassifier, plans: list[FitPlan], tensors: dict[str, Any], cfg: RunConfig,
               n_classes: int, progress: ProgressFn | None, store: EmbeddingStore | None,
               session: TrainSession) -> History:
    """fit() every phase; when resuming, phases before the checkpoint's only rebuild their structure."""
    history = History(monitor=cfg.train.monitor)
    state = session.resume
    for index, plan in enumerate(plans, start=1):
        if state is not None and index < state["phase"]:
            for hook in (plan.prepare, plan.finalize):  # weights come from the checkpoint
                if hook is not None:
                    hook()
            continue
        session.resume = state if state is not None and index == state["phase"] else None
        log.info("phase %s: %d epochs", plan.phase, plan.epochs or cfg.train.epochs)
        fit(model, tensors["train"], tensors["val"], cfg.train, plan, n_classes, progress, history=history,
            store=store, session=session)
    session.resume = None
    return history


def train_run(cfg: RunConfig, out_dir: str | Path, progress: ProgressFn | None = None, *,
              cache_dir: str | Path | None = None, resume: bool = False,
              on_splits: Callable[[SplitReport], None] | None = None,
              layers: list[str] | None = None, builtin_data: bool = False) -> TrainResult:
    """Train the configured model (every phase of its mode) and write the run directory.

    `resume` continues from checkpoints/last.pt of `out_dir` (same config); `on_splits` hears the split
    policy before training starts; `layers` (which setting came from where) is stored in config.yaml;
    `builtin_data` (the user named no data) makes data errors say the built-in dataset was used.
    Under torchrun (RANK/WORLD_SIZE set) this joins the process group and trains with DDP.
    """
    cfg.validate()  # train.device chooses the process group's backend
    with process_group(cfg.train.device) as dist:
        result = _train(cfg, Path(out_dir), progress, cache_dir, resume, on_splits, layers, dist, builtin_data)
        dist.barrier()  # ranks end together; an error on any rank ends the job (torchrun stops the rest)
        return result


def _train(cfg: RunConfig, out: Path, progress: ProgressFn | None, cache_dir: str | Path | None, resume: bool,
           on_splits: Callable[[SplitReport], None] | None, layers: list[str] | None,
           dist: DistContext, builtin_data: bool = False) -> TrainResult:
    check_augment(cfg.train.augment)  # a bad setting fails before minutes of data loading
    cfg.data = absolute_data(cfg.data)  # stored absolute: export/quantize/eval work from any directory
    hf = resolve_hf_config(cfg.model)  # hf:PATH encoders: preprocessing from their own folders
    started = time.perf_counter()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    # a resume is checked before the data loads (it writes nothing); a fresh run clears `out` once the data is good
    session = start_session(cfg, out, dist, resume, layers) if resume else None
    with naming_fallback(None if builtin_data else "given"):  # only data errors can come from the default
        splits, report = load_splits(cfg)
    if on_splits is not None and dist.is_main:
        on_splits(report)
    session = session or start_session(cfg, out, dist, resume, layers)
    labels = splits["train"].labels
    with ExitStack() as stack:  # ranks > 0 keep their tokenizer in a private folder: rank 0 owns `out`
        root = out if dist.is_main else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with naming_fallback(None if builtin_data else "given"):
            vocab = prepare_tokenizer(cfg, splits["train"], root)
        save_architectures(hf, root)  # hf: encoders rebuild from the run alone (export, torch reference)
        spec = with_hf_specs(preprocessing_spec(cfg.model), hf)
        pre = Preprocessor(cfg.model.modalities, spec, root=root)
        with naming_fallback(None if builtin_data else "given"):
            tensors = {name: tensorize(ds, pre) for name, ds in splits.items()}
    model = MultimodalClassifier(cfg.model, len(labels), vocab).to(dist.device)  # batches follow it there
    if dist.active:
        torch.manual_seed(cfg.train.seed + dist.rank)  # dropout differs per rank; DDP syncs the weights
    store = embedding_store(spec, cache_dir)
    plans = build_plans(model, cfg.train)
    if crop_applies(model, cfg.train.augment) and spec.audio is not None:
        long = long_waveforms(splits["train"], spec.audio, cfg.train.augment.audio.crop_factor)
        if long is not None:
            tensors["train"].crop["waveform"] = long
    history = run_phases(model, plans, tensors, cfg, len(labels), progress, store, session)
    digests = dist.gather(state_digest(model)) if dist.active else []
    if not dist.is_main:
        return TrainResult(out, {}, history, time.perf_counter() - started, report, is_main=False)
    test = evaluate(model, tensors["test"], len(labels), store=store, cached=plans[-1].frozen)
    seconds = time.perf_counter() - started
    metrics = {"test": test, "best_epoch": history.best_epoch, "val_accuracy": history.best_val_accuracy,
               "monitor": history.monitor, "best_value": history.best_value, "stop_reasons": history.stop_reasons,
               "train_seconds": round(seconds, 2), "mode": cfg.train.mode, "phases": history.phases,
               "history": history.epochs, "requires_all_modalities": model.head.requires_all,
               "splits": report.to_json(), "checkpoints": str(out / CHECKPOINT_DIR)}
    if dist.active:
        metrics["distributed"] = {"world_size": dist.world_size, "backend": dist.backend, "param_digests": digests}
    if store is not None:
        metrics["embedding_cache"] = {"dir": str(store.root), "hits": store.hits, "misses": store.misses}
    save_run(out, cfg, model, labels, spec, vocab, metrics)
    log.info("trained %s (%s) in %.1fs: test accuracy %.4f", cfg.name, cfg.train.mode, seconds,
             test["all"]["accuracy"])
    return TrainResult(out, metrics, history, seconds, report)
