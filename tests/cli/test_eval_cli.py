"""`mmedge eval` data handling: --split on a split-less manifest, the built-in fallback named in errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke, write_digits_manifest


@pytest.fixture(scope="module")
def plain_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 labelled digits rows (text + image files), no split field."""
    return write_digits_manifest(tmp_path_factory.mktemp("plain"), 12, audio=False, name="m.jsonl")


def test_split_on_a_manifest_without_split_scores_every_row(tiny_bundle_pristine: Path, plain_manifest: Path):
    result = invoke("eval", tiny_bundle_pristine, "--data", plain_manifest, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["subsets"]["all"]["n"] == 12 and row["split"] is None
    assert "no 'split' field: scoring every row, not a 'test' split" in row["note"]
    table = invoke("eval", tiny_bundle_pristine, "--data", plain_manifest, "--split", "test")
    assert table.exit_code == 0, table.output
    assert "note:" in table.output and "scoring every row" in table.output and "all rows" in table.output


@pytest.fixture(scope="module")
def audio_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny audio-only bundle."""
    from mmedge.exporters.export_run import export_run
    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    cfg = preset_config("tiny")
    cfg.limit, cfg.train.epochs, cfg.model.modalities = 16, 1, ["audio"]
    root = tmp_path_factory.mktemp("audio")
    train_run(cfg, root / "run")
    export_run(root / "run", root / "bundle", samples=4)
    return root / "bundle"


def test_an_error_caused_by_the_builtin_fallback_names_it(audio_bundle: Path, plain_manifest: Path):
    result = invoke("eval", audio_bundle)
    assert_one_line_error(result, "no --data was given, so the built-in 'digits' dataset was used")
    named = invoke("eval", audio_bundle, "--data", plain_manifest)
    assert named.exit_code != 0 and "no --data was given" not in named.output
