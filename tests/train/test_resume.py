"""Best and last checkpoints, ties → later epoch, patience, and --resume replaying a killed run exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ft_helpers import N_CLASSES, make_model, small_model_config, synthetic_split, train_config
from safetensors.torch import load_file

from mmedge.config import RunConfig
from mmedge.errors import InputError
from mmedge.models.presets import preset_config
from mmedge.train.loop import FitPlan, fit
from mmedge.train.run import train_run
from mmedge.train.state import BEST, CHECKPOINT_DIR, LAST, Checkpoints, TrainSession


def test_ties_go_to_the_later_epoch_and_patience_stops(tmp_path: Path):
    """lr = 0 on a model without BatchNorm: every epoch ties; the last tie is kept and patience stops at 3."""
    model = make_model(set(), small_model_config(("text",)))
    train, val = synthetic_split(32, 0, n_modalities=1), synthetic_split(16, 1, n_modalities=1)
    cfg = train_config("full", epochs=10, lr=0.0, patience=2, monitor="val_accuracy")
    session = TrainSession(Checkpoints(tmp_path))
    history = fit(model, train, val, cfg, FitPlan([{"params": list(model.parameters()), "lr": 0.0}]), N_CLASSES,
                  session=session)
    assert len({e["val_accuracy"] for e in history.epochs}) == 1, "lr 0 should give identical epochs"
    assert len(history.epochs) == 3 and history.best_epoch == 3
    assert history.stop_reasons == ["train: early stop at epoch 3: val_accuracy did not improve by more than 0 "
                                    f"for 2 epochs (best {history.best_value:.4f} at epoch 3)"]
    best = session.checkpoints.load_best()  # type: ignore[union-attr]
    assert best is not None and best[1] == 3
    assert torch.load(tmp_path / CHECKPOINT_DIR / LAST, weights_only=True)["epoch"] == 3


def quick(epochs: int = 4) -> RunConfig:
    cfg = preset_config("tiny")
    cfg.limit, cfg.train.epochs, cfg.train.patience = 48, epochs, 50
    cfg.model.modalities = ["text", "audio"]
    return cfg


def test_best_and_last_checkpoints_are_written(tmp_path: Path):
    result = train_run(quick(3), tmp_path / "run")
    folder = tmp_path / "run" / CHECKPOINT_DIR
    best, final = load_file(str(folder / BEST)), load_file(str(tmp_path / "run" / "model.safetensors"))
    assert best.keys() == final.keys() and all(torch.equal(best[k], final[k]) for k in best)
    last = torch.load(folder / LAST, weights_only=True)
    assert last["epoch"] == 3 and last["history"]["best_epoch"] == result.metrics["best_epoch"]
    assert result.metrics["monitor"] == "val_loss" and result.metrics["stop_reasons"] == ["full: ran all 3 epochs"]
    assert (tmp_path / "run" / "config.yaml").is_file()


class Killed(Exception):
    """Stands for a kill right after an epoch's checkpoints were written."""


def test_resume_after_a_kill_reaches_the_same_final_model(tmp_path: Path):
    straight = train_run(quick(), tmp_path / "straight")

    def kill_after_two(epoch: int, epochs: int, figures: dict[str, float]) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_run(quick(), tmp_path / "resumed", kill_after_two)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = train_run(quick(), tmp_path / "resumed", resume=True)
    assert resumed.metrics["history"] == straight.metrics["history"]
    assert resumed.metrics["test"] == straight.metrics["test"]
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config_or_nothing_to_resume(tmp_path: Path):
    with pytest.raises(InputError, match="nothing to resume"):
        train_run(quick(1), tmp_path / "empty", resume=True)
    train_run(quick(1), tmp_path / "run")
    other = quick(1)
    other.train.lr = 1e-2
    with pytest.raises(InputError, match="trained with another configuration"):
        train_run(other, tmp_path / "run", resume=True)


def test_resume_inside_the_second_phase_of_lp_ft(tmp_path: Path):
    """lp-ft killed in its fine-tune phase: the resumed run skips the probe phase and ends identical."""
    from ft_helpers import snapshot, splits

    from mmedge.train.distributed import DistContext
    from mmedge.train.modes import build_plans
    from mmedge.train.run import run_phases, start_session

    cfg = RunConfig(train=train_config("lp-ft", epochs=3, lp_epochs=2))
    train, val = splits()
    tensors = {"train": train, "val": val}

    def trained(out: Path, progress=None, resume: bool = False) -> tuple[object, dict[str, torch.Tensor]]:
        model = make_model({"image"})
        session = start_session(cfg, out, DistContext(), resume, None)
        history = run_phases(model, build_plans(model, cfg.train), tensors, cfg, N_CLASSES, progress, None, session)
        return history, snapshot(model)

    straight_history, straight = trained(tmp_path / "a")
    phases_seen: list[float] = []

    def kill_in_phase_two(epoch: int, epochs: int, figures: dict[str, float]) -> None:
        phases_seen.append(figures["phase"])
        if figures["phase"] == 2.0 and epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        trained(tmp_path / "b", kill_in_phase_two)
    resumed_history, resumed = trained(tmp_path / "b", resume=True)
    assert phases_seen == [1.0, 1.0, 2.0]
    assert resumed_history == straight_history
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path: Path):
    """A refused --resume must not rewrite config.yaml (the run stays resumable); nothing to resume creates nothing."""
    with pytest.raises(InputError, match="nothing to resume"):
        train_run(quick(1), tmp_path / "empty", resume=True)
    assert not (tmp_path / "empty").exists()
    train_run(quick(1), tmp_path / "run")
    before = (tmp_path / "run" / "config.yaml").read_bytes()
    other = quick(1)
    other.train.lr = 1e-2
    with pytest.raises(InputError, match="trained with another configuration"):
        train_run(other, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "config.yaml").read_bytes() == before
    train_run(quick(1), tmp_path / "run", resume=True)  # still resumable with its own config


def test_a_fresh_run_clears_an_earlier_finished_run_first(tmp_path: Path):
    """A fresh run into a finished run's folder, killed before it ends, must not leave the old model to export."""
    train_run(quick(1), tmp_path / "run")
    assert (tmp_path / "run" / "run.json").is_file()

    def kill_at_once(epoch: int, epochs: int, figures: dict[str, float]) -> None:
        raise Killed

    with pytest.raises(Killed):
        train_run(quick(2), tmp_path / "run", kill_at_once)
    for name in ("run.json", "model.safetensors", "metrics.json"):
        assert not (tmp_path / "run" / name).exists(), name
    assert torch.load(tmp_path / "run" / CHECKPOINT_DIR / LAST, weights_only=True)["epoch"] == 1
