"""Run directories: config, safetensors checkpoint, labels, tokenizer and metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmedge.config import RunConfig, from_dict
from mmedge.errors import InputError
from mmedge.io import atomic_open, atomic_path, write_json
from mmedge.models.classifier import MultimodalClassifier
from mmedge.models.hf.architecture import architecture_from
from mmedge.specs import Preprocessing

CHECKPOINT = "model.safetensors"
RUN_META = "run.json"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"


@dataclass
class LoadedRun:
    """A trained model with what export and eval need to reproduce its preprocessing."""

    root: Path
    config: RunConfig
    labels: list[str]
    preprocessing: Preprocessing
    vocab_size: int
    metrics: dict[str, Any]
    model: MultimodalClassifier


def write_config(root: Path, cfg: RunConfig, layers: list[str] | None = None) -> Path:
    """config.yaml: the resolved config (reusable with --config), headed by the layers that made it."""
    import yaml

    header = "".join(f"# {line}\n" for line in ["resolved mmedge training config", *(layers or [])])
    with atomic_open(root / CONFIG_FILE) as fh:
        fh.write(header + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True))
    return root / CONFIG_FILE


def save_run(root: Path, cfg: RunConfig, model: MultimodalClassifier, labels: list[str],
             preprocessing: Preprocessing, vocab_size: int, metrics: dict[str, Any]) -> None:
    """Write the run directory (atomic per file; run.json last so a partial run is never trusted)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}  # loads on any machine
    with atomic_path(root / CHECKPOINT) as tmp:
        save_file(state, str(tmp))
    write_json(root / METRICS_FILE, metrics)
    write_json(root / RUN_META, {"config": cfg.to_dict(), "labels": labels, "preprocessing": preprocessing.to_json(),
                                 "vocab_size": vocab_size, "config_digest": cfg.digest()})


def load_run(root: str | Path) -> LoadedRun:
    """Rebuild the model of a run directory from its config and safetensors checkpoint."""
    from safetensors.torch import load_file

    root = Path(root)
    meta_path, ckpt = root / RUN_META, root / CHECKPOINT
    if not meta_path.is_file() or not ckpt.is_file():
        raise InputError(f"{root} is not a finished training run (needs {RUN_META} and {CHECKPOINT}; "
                         "create one with: mmedge train --out RUN)")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = from_dict(RunConfig, meta["config"], str(meta_path)).validate()
        with architecture_from(root):  # hf: encoders: from the run's saved config files, not the user's folder
            model = MultimodalClassifier(cfg.model, len(meta["labels"]), int(meta["vocab_size"]))
        model.load_state_dict(load_file(str(ckpt)))
    except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot load run {root}: {type(exc).__name__}: {exc}") from exc
    model.eval()
    metrics_path = root / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return LoadedRun(root, cfg, list(meta["labels"]), Preprocessing.from_json(meta["preprocessing"]),
                     int(meta["vocab_size"]), metrics, model)

