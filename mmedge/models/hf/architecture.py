"""A run keeps its `hf:` encoders' architecture files, so runs and bundles outlive the user's folder.

Training copies each folder's config.json, preprocessor_config.json and tokenizer.json (never the
weights: the run's checkpoint holds the fine-tuned ones) into `RUN/hf/<modality>/`; export copies them
into the bundle's torch reference. Loading a run (`load_run`) builds inside `architecture_from(root)`:
an `hf:` encoder is then made from those files with random weights (no download, no original folder),
and the checkpoint fills them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from mmedge.io import atomic_path
from mmedge.models.hf.folder import CONFIG_FILE, PREPROCESSOR_FILE, TOKENIZER_FILE, HFFolder, hf_folder

ARCH_DIR = "hf"
ARCH_FILES: tuple[str, ...] = (CONFIG_FILE, PREPROCESSOR_FILE, TOKENIZER_FILE)
_ROOT: ContextVar[Path | None] = ContextVar("mmedge_hf_architecture_root", default=None)


def save_architectures(folders: dict[str, HFFolder], root: Path) -> list[str]:
    """Copy each folder's architecture files into `root/hf/<modality>/` (atomic); their paths under root."""
    written = []
    for modality, folder in folders.items():
        for name in ARCH_FILES:
            src = folder.path / name
            if src.is_file():
                relative = f"{ARCH_DIR}/{modality}/{name}"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(root / relative) as tmp:
                    shutil.copyfile(src, tmp)
                written.append(relative)
    return written


def saved_architectures(root: Path) -> list[str]:
    """Architecture files a run (or a bundle's torch reference) holds, as paths under `root`."""
    base = root / ARCH_DIR
    if not base.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in base.glob("*/*") if p.name in ARCH_FILES and p.is_file())


@contextmanager
def architecture_from(root: str | Path) -> Iterator[None]:
    """Within the block, `hf:` encoders with files saved under `root/hf/` are built from them, weightless."""
    token = _ROOT.set(Path(root))
    try:
        yield
    finally:
        _ROOT.reset(token)


def source_folder(name: str, modality: str) -> tuple[HFFolder, bool]:
    """(folder to build from, whether its weights are to be loaded): the run's saved files when building one."""
    root = _ROOT.get()
    saved = root / ARCH_DIR / modality if root is not None else None
    if saved is not None and (saved / CONFIG_FILE).is_file():
        return hf_folder(f"hf:{saved}", modality), False
    return hf_folder(name, modality), True
