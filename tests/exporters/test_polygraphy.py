"""Polygraphy (the outside tool) runs every artifact of the tiny bundle — 4 components × fp32/fp16/int8/int8-trt —
on the real inputs `export-inputs` wrote, and fp16/int8 pass against fp32 at the project's stated tolerances
(mmedge.exporters.real_inputs.TOLERANCES, docs/outside_tools.md), using exactly the printed command lines."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mmedge.exporters.real_inputs import export_inputs, load_polygraphy_inputs, write_polygraphy_inputs

pytest.importorskip("polygraphy", reason="Polygraphy is a dev dependency: pip install 'mmedge[dev]'")
POLYGRAPHY = Path(sys.executable).parent / "polygraphy"


def run(command: str) -> subprocess.CompletedProcess[str]:
    """Run a printed command line with this venv's polygraphy."""
    argv = shlex.split(command)
    assert argv[0] == "polygraphy"
    return subprocess.run([str(POLYGRAPHY), *argv[1:]], capture_output=True, text=True, timeout=300)


def run_component(commands: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """fp32 first (it saves the reference outputs), then every other precision against it."""
    order = ["polygraphy fp32", *sorted(k for k in commands if k.startswith("polygraphy ") and k != "polygraphy fp32")]
    return {key: run(commands[key]) for key in order}


@pytest.fixture(scope="module")
def inputs(quantized_bundle_pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return export_inputs(quantized_bundle_pristine, tmp_path_factory.mktemp("pg"), count=6)


@pytest.fixture(scope="module")
def runs(inputs: dict) -> dict[str, dict[str, subprocess.CompletedProcess[str]]]:
    """Every printed Polygraphy command, run once (2 components at a time; each component is a chain)."""
    if not POLYGRAPHY.exists():
        pytest.skip(f"no polygraphy executable at {POLYGRAPHY}")
    comps = inputs["components"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(comps, pool.map(lambda c: run_component(comps[c]["commands"]), comps), strict=True))


def test_polygraphy_passes_every_precision_on_real_inputs(runs: dict):
    ran = {(c, k.split()[1]) for c, by_key in runs.items() for k in by_key}
    precisions = ("fp32", "fp16", "int8", "int8-trt")
    assert ran == {(c, p) for c in ("text", "image", "audio", "fusion_head") for p in precisions}
    for component, by_key in runs.items():
        for key, done in by_key.items():
            assert done.returncode == 0, f"{component} {key}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            assert "PASSED" in done.stdout + done.stderr
            if key != "polygraphy fp32":
                assert "Pass Rate: 100.00%" in done.stdout + done.stderr, f"{component} {key}"


def test_tolerances_reject_outputs_of_other_samples(inputs: dict, runs: dict, tmp_path: Path):
    """The stated int8 tolerance is not vacuous: the same artifact compared against the fp32 outputs of *other*
    real samples (the feeds reversed) fails."""
    comp = inputs["components"]["image"]
    commands = comp["commands"]
    assert runs["image"]["polygraphy fp32"].returncode == 0  # its saved outputs are the reference
    reversed_inputs = tmp_path / "reversed.json"
    write_polygraphy_inputs(load_polygraphy_inputs(Path(comp["polygraphy_inputs"]))[::-1], reversed_inputs)
    swapped = commands["polygraphy int8-trt"].replace(shlex.quote(comp["polygraphy_inputs"]),
                                                      shlex.quote(str(reversed_inputs)))
    assert swapped != commands["polygraphy int8-trt"]
    done = run(swapped)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr
    assert json.loads(json.dumps(inputs["tolerances"]))["encoder"]["int8"]["stat"] == "mean"
