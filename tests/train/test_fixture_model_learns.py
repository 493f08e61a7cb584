"""The shared test model is well above chance, so agreement and accuracy checks elsewhere compare real classifiers."""

from __future__ import annotations

import json
from pathlib import Path

CHANCE = 0.1  # ten digit classes


def test_fused_and_single_modality_accuracy_are_well_above_chance(tiny_run: Path) -> None:
    test = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert test["all"]["accuracy"] >= 5 * CHANCE, test["all"]
    for modality in ("text", "image", "audio"):
        assert test[modality]["accuracy"] >= 2.5 * CHANCE, (modality, test[modality])
    # fusion helps: every modality together beats each one alone
    assert test["text+image+audio"]["accuracy"] > max(test[m]["accuracy"] for m in ("text", "image", "audio"))
