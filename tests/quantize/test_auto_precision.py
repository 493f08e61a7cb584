"""`quantize --auto`: the fastest per-component map whose accuracy stays within the budget of fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmedge.bundle import Bundle
from mmedge.errors import InputError
from mmedge.quantize.auto_precision import auto_precision, pick

LATENCY = {"text": {"fp32": 1.0, "int8": 0.5}, "image": {"fp32": 4.0, "fp16": 3.5, "int8": 1.0},
           "fusion_head": {"fp32": 0.2, "int8": 0.1}}


def synthetic(combo: dict[str, str]) -> tuple[float, float]:
    """fp32 = 0.90; image int8 costs 2 points, image fp16 0.1, text int8 0.3 (agreement 97 %), head nothing."""
    drop = {"int8": 0.02, "fp16": 0.001}.get(combo["image"], 0.0) + (0.003 if combo["text"] == "int8" else 0.0)
    agree = 1.0 - (0.03 if combo["text"] == "int8" else 0.0) - (0.05 if combo["image"] == "int8" else 0.0)
    return 0.90 - drop, agree


def test_budget_excludes_the_violating_candidate():
    combo, (acc, _), tried = pick(LATENCY, synthetic, 0.90, budget_points=0.5)
    assert combo == {"text": "int8", "image": "fp16", "fusion_head": "int8"}
    assert acc >= 0.90 - 0.005 and tried > 1


def test_a_larger_budget_admits_it_and_zero_budget_keeps_accuracy():
    assert pick(LATENCY, synthetic, 0.90, budget_points=3.0)[0]["image"] == "int8"
    combo, (acc, _), _ = pick(LATENCY, synthetic, 0.90, budget_points=0.0)
    assert acc == pytest.approx(0.90) and combo == {"text": "fp32", "image": "fp32", "fusion_head": "int8"}


def test_agreement_floor_rejects_a_candidate_within_the_accuracy_budget():
    combo, (_, agree), _ = pick(LATENCY, synthetic, 0.90, budget_points=0.5, min_agreement=0.98)
    assert combo["text"] == "fp32" and agree >= 0.98


def test_bad_budget_or_agreement_is_an_input_error():
    with pytest.raises(InputError, match="budget"):
        pick(LATENCY, synthetic, 0.9, budget_points=-1)
    with pytest.raises(InputError, match="min-agreement"):
        pick(LATENCY, synthetic, 0.9, budget_points=0.5, min_agreement=98)


def test_auto_on_a_real_bundle_honours_budget_and_is_stored(quantized_bundle: Path):
    result = auto_precision(quantized_bundle, budget=0.0, threads=1, repeat=5, limit=96)
    assert result.accuracy >= result.reference_accuracy - 1e-9 and result.agreement >= 0.98
    assert set(result.choice) == {"text", "image", "audio", "fusion_head"}
    assert set(result.latency["image"]) == {"fp32", "fp16", "int8"}
    stored = json.loads((quantized_bundle / "bundle.json").read_text())["provenance"]["auto_precision"]
    assert stored["choice"] == result.choice and stored["budget_points"] == 0.0
    Bundle.load(quantized_bundle)  # still verifies


def test_auto_through_the_cli(quantized_bundle: Path):
    from typer.testing import CliRunner

    from mmedge.cli.main import app

    result = CliRunner().invoke(app, ["quantize", str(quantized_bundle), "--auto", "--budget", "1", "--threads", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["artifacts"] == [] and data["auto_precision"]["budget_points"] == 1.0
    shown = CliRunner().invoke(app, ["eval", str(quantized_bundle), "--precision", "auto", "--json"])
    assert shown.exit_code == 0, shown.output
