"""`mmedge train` through the real CLI: config layering, split policy, patience, kill + --resume, paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import torch
from cli_helpers import invoke

from mmedge.train.layering import resolve_config

QUICK = ["--limit", "40", "--modalities", "text"]


def test_config_layers_are_printed_and_stored(tmp_path: Path):
    partial = tmp_path / "partial.yaml"
    partial.write_text("train:\n  patience: 3\n  monitor: val_accuracy\n")
    result = invoke("train", "--config", partial, "--epochs", "2", *QUICK, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert f"config layers: preset tiny; config {partial}: train.patience, train.monitor; flags: " in result.output
    assert "splits: built-in digits" in result.output and "test voices are held out" in result.output
    assert "phase full: ran all 2 epochs" in result.output
    stored = resolve_config(None, tmp_path / "run" / "config.yaml").config
    assert (stored.train.patience, stored.train.monitor, stored.train.epochs) == (3, "val_accuracy", 2)
    assert stored.model.preset == "tiny" and stored.model.modalities == ["text"]


def test_json_carries_the_config_and_the_splits(tmp_path: Path):
    result = invoke("train", "--epochs", "1", *QUICK, "--clip-seconds", "0.5", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["config"]["config"]["model"]["audio"]["clip_seconds"] == 0.5
    assert out["config"]["layers"][-1]["layer"] == "flags"
    assert out["splits"]["policy"].startswith("built-in digits") and out["splits"]["rows"]["val"] == 40


def test_patience_stops_early_and_says_why(tmp_path: Path):
    result = invoke("train", "--epochs", "40", "--patience", "1", *QUICK, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    [reason] = out["stop_reasons"]
    assert reason.startswith("full: early stop at epoch ") and "val_loss did not improve" in reason
    stopped_at = int(reason.split("epoch ")[1].split(":")[0])
    assert stopped_at < 40 and len(out["history"]) == stopped_at


def train_cmd(out: Path, epochs: int, kill_after_epoch: int) -> list[str]:
    """`mmedge train` in a child that SIGKILLs itself right after last.pt of `kill_after_epoch` is written.

    Killing from the outside raced a fast run to its end; this dies at the same point on any machine.
    """
    script = (
        "import os, signal\n"
        "from mmedge.train import state\n"
        "save = state.Checkpoints.save_last\n"
        "def save_then_die(self, payload):\n"
        "    save(self, payload)\n"
        f"    if payload['epoch'] >= {kill_after_epoch}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "state.Checkpoints.save_last = save_then_die\n"
        "from mmedge.cli.main import app; app(prog_name='mmedge')\n"
    )
    return [sys.executable, "-c", script, "train", "--epochs", str(epochs), *QUICK, "--out", str(out)]


def test_kill_then_resume_matches_an_uninterrupted_run(tmp_path: Path):
    straight = invoke("train", "--epochs", "8", *QUICK, "--out", tmp_path / "straight", "--json")
    assert straight.exit_code == 0, straight.output
    run = tmp_path / "run"
    proc = subprocess.run(train_cmd(run, 8, kill_after_epoch=2), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"the run should have been killed mid-training:\n{proc.stderr}"
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    assert not (run / "model.safetensors").exists()
    resumed = invoke("train", "--out", run, "--resume", "--json")  # the run's own config.yaml
    assert resumed.exit_code == 0, resumed.output
    a, b = json.loads(straight.output), json.loads(resumed.output)
    assert a["history"] == b["history"] and a["test"] == b["test"]


def test_manifest_path_is_stored_absolute_so_export_works_elsewhere(tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": f"{['red', 'green'][i % 2]} thing {i}", "label": "ab"[i % 2]} for i in range(40)]
    (data / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(data)
    result = invoke("train", "--data", "m.jsonl", "--modalities", "text", "--epochs", "1", "--out", "run")
    assert result.exit_code == 0, result.output
    assert "splits: automatic 80/10/10 by row order" in result.output
    assert json.loads((data / "run" / "run.json").read_text())["config"]["data"] == str(data / "m.jsonl")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("export", data / "run", "--out", "bundle", "--json")
    assert result.exit_code == 0, result.output


def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path: Path, monkeypatch):
    from cli_helpers import assert_one_line_error

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("train", "--device", "cuda", "--epochs", "1", *QUICK, "--out", tmp_path / "run")
    assert_one_line_error(result, "train.device is cuda but torch sees no CUDA GPU")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    ok = invoke("train", "--device", "cpu", "--epochs", "1", *QUICK, "--out", tmp_path / "cpu", "--json")
    assert ok.exit_code == 0, ok.output
    assert "device: cpu" in (tmp_path / "cpu" / "config.yaml").read_text()


def test_the_built_in_data_note_is_only_on_data_errors(tmp_path: Path):
    """'no --data was given' belongs to errors about the data, not to e.g. a refused --resume."""
    resumed = invoke("train", "--resume", *QUICK, "--out", tmp_path / "empty")
    assert resumed.exit_code == 2 and "nothing to resume" in resumed.output
    assert "no --data was given" not in resumed.output
    too_few = invoke("train", "--limit", "2", "--epochs", "1", "--out", tmp_path / "run")
    assert too_few.exit_code == 2 and "single training sample" in too_few.output
    assert "no --data was given, so the built-in 'digits' dataset was used" in too_few.output


def test_printed_config_is_the_resolved_one_and_a_files_name_wins(tmp_path: Path, monkeypatch):
    """The YAML printed is what trains (manifest path made absolute); --out names the run only when the file doesn't."""
    rows = [{"text": f"{['red', 'green'][i % 2]} thing {i}", "label": "ab"[i % 2]} for i in range(40)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "named.yaml").write_text("name: fromfile\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--config", "named.yaml", "--data", "m.jsonl", "--modalities", "text", "--epochs", "1",
                    "--out", "run")
    assert result.exit_code == 0, result.output
    assert f"data: {tmp_path / 'm.jsonl'}" in result.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["name"] == "fromfile"
    plain = invoke("train", "--data", "m.jsonl", "--modalities", "text", "--epochs", "1", "--out", "run2", "--json")
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.output)["config"]["config"]["name"] == "run2"
