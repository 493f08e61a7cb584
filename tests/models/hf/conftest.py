"""Session fixtures: tiny, randomly initialised Hugging Face folders (never downloaded) and small manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_helpers import MAKERS, ROWS, write_manifest


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{family: folder} of tiny random models, saved once per session."""
    root = tmp_path_factory.mktemp("hf_models")
    return {name: make(root / name) for name, make in MAKERS.items()}


@pytest.fixture(scope="session")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{modality: manifest} of one-modality data (48/24/24 rows), written once per session."""
    from mmedge.data.manifest import resolve_dataset

    root = tmp_path_factory.mktemp("hf_data")
    splits = {split: resolve_dataset("digits", split, limit=2 * n) for split, n in ROWS.items()}
    return {m: write_manifest(root / m, m, splits) for m in ("text", "image", "audio")}
