"""A run trained with --split-seed N: its bundle records N, and eval/calibration/bench read the run's own rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmedge.bundle import Bundle
from mmedge.data.digits import LABELS, load_digits
from mmedge.data.manifest import load_manifest_splits
from mmedge.data.preprocess import Preprocessor
from mmedge.train.checkpoint import load_run

SEED = 3


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(manifest, run, bundle): 60 digit images in 12 groups, a tiny image model trained with split_seed 3."""
    from mmedge.exporters.export_run import export_run
    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    root = tmp_path_factory.mktemp("seeded")
    rows = []
    for i, s in enumerate(load_digits("train", limit=60).samples):
        Image.fromarray(s.image).save(root / f"{i}.png")
        rows.append(json.dumps({"image": f"{i}.png", "label": LABELS[s.label], "group": f"g{i % 12}",
                                "id": f"g{i % 12}-{i}"}))
    (root / "m.jsonl").write_text("\n".join(rows) + "\n")
    cfg = preset_config("tiny")
    cfg.data, cfg.split_seed, cfg.train.epochs, cfg.model.modalities = str(root / "m.jsonl"), SEED, 1, ["image"]
    train_run(cfg, root / "run")
    export_run(root / "run", root / "bundle", samples=4)
    return root / "m.jsonl", root / "run", root / "bundle"


def ids(samples: list) -> list[str]:
    return [s.id for s in samples]


def test_eval_scores_the_training_test_split(seeded: tuple[Path, Path, Path]):
    from mmedge.eval.evaluate import evaluate_bundle

    manifest, run_dir, bundle_dir = seeded
    test = load_manifest_splits(manifest, split_seed=SEED)[0]["test"]
    assert ids(test.samples) != ids(load_manifest_splits(manifest, split_seed=0)[0]["test"].samples)  # can fail
    bundle = Bundle.load(bundle_dir)
    assert bundle.provenance["split_seed"] == SEED and bundle.split_seed == SEED
    result = evaluate_bundle(bundle_dir, str(manifest), "test")
    run = load_run(run_dir)
    batch = Preprocessor(["image"], run.preprocessing, root=run.root).batch(test.samples)
    with torch.inference_mode():
        want = run.model.eval()({k: torch.from_numpy(v) for k, v in batch.feeds["image"].items()},
                                torch.from_numpy(batch.present)).numpy()
    assert result.subsets["all"]["n"] == len(test) == run.metrics["test"]["all"]["n"]
    np.testing.assert_allclose(result.logits, want, atol=1e-4)


def test_calibration_and_bench_samples_come_from_the_runs_splits(seeded: tuple[Path, Path, Path]):
    from mmedge.bench.workload import load_samples as bench_samples
    from mmedge.quantize.calibration import load_samples

    manifest, _, bundle_dir = seeded
    bundle = Bundle.load(bundle_dir)
    splits = load_manifest_splits(manifest, split_seed=SEED)[0]
    assert ids(load_samples(bundle, None, "val", 100).samples) == ids(splits["val"].samples)
    picked = bench_samples(str(manifest), "test", ["image"], 100, split_seed=bundle.split_seed)
    assert ids(picked) == ids(splits["test"].samples)
