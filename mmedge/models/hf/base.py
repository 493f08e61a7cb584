"""Loading a local Hugging Face model and the shared shape of every `hf:` encoder."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from mmedge.errors import InputError, require
from mmedge.models.hf.folder import HFFolder
from mmedge.models.pretrained import PretrainedEncoder

log = logging.getLogger(__name__)


def load_hf_model(folder: HFFolder, weights: bool = True) -> Any:
    """AutoModel from the folder: local files only, eager attention (exports with TorchScript), no pooler.

    Weights the folder lacks (randomly initialised by transformers) are named in one warning; the
    library's own load report and progress bars are held back. `weights=False` builds the architecture
    alone (random weights that a run's checkpoint then replaces; see architecture.py).
    """
    require("transformers", f"Hugging Face encoders (hf:{folder.path})")
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        if weights:
            model, info = AutoModel.from_pretrained(str(folder.path), local_files_only=True,
                                                    attn_implementation="eager", output_loading_info=True)
        else:
            config = AutoConfig.from_pretrained(str(folder.path), local_files_only=True)
            model, info = AutoModel.from_config(config, attn_implementation="eager"), {}
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # missing weights, bad config, shape mismatch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"cannot load {folder.family} model from {folder.path}: {type(exc).__name__}: "
                         f"{first}") from exc
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused (mmedge pools itself); keeps the checkpoint free of dead weights
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")]
    if missing:
        log.warning("%s: %d weight(s) not in the folder are randomly initialised (e.g. %s)", folder.path,
                    len(missing), ", ".join(sorted(missing)[:3]))
    log.debug("loaded %s (%s) from %s", type(model).__name__, folder.model_type, folder.path)
    return model


def layer_list(module: nn.Module, *paths: str) -> list[nn.Module]:
    """The first of the dotted `paths` that exists on `module`, as a list of its children (in order)."""
    for path in paths:
        obj: Any = module
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.Module):
            return list(obj.children())
    raise InputError(f"{type(module).__name__}: no layer list at {' or '.join(paths)}")


def grouped(blocks: list[nn.Module], tail: list[nn.Module]) -> list[nn.Module]:
    """`blocks` with the weight-carrying `tail` modules (final norms) joined to the last block."""
    tail = [t for t in tail if t is not None and any(True for _ in t.parameters())]
    if not tail:
        return blocks
    return [*blocks[:-1], nn.ModuleList([blocks[-1], *tail])]


class HFEncoder(PretrainedEncoder):
    """A pretrained `hf:` backbone ([B, F] pooled features) + a trainable Linear F → D."""

    family: str = ""

    def __init__(self, folder: HFFolder, embed_dim: int, features: int) -> None:
        super().__init__()
        self.embed_dim, self.source = embed_dim, folder.describe()
        self.proj = nn.Linear(features, embed_dim)
