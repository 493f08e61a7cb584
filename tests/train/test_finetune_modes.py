"""Fine-tuning modes on small real models: frozen, lp-ft, partial (tiny encoders flagged pretrained)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ft_helpers import N_CLASSES, make_model, same, snapshot, splits, train_config

from mmedge.errors import ConfigError
from mmedge.train.loop import FitPlan, History, fit
from mmedge.train.modes import MODES, build_plans


def test_modes_registered_lazily() -> None:
    """build_plans imports the peft modes on demand; unknown modes name the known ones."""
    model = make_model({"image"})
    build_plans(model, train_config("partial"))
    assert {"full", "frozen", "lp-ft", "partial", "lora"} <= set(MODES)
    with pytest.raises(ConfigError, match="lp-ft"):
        build_plans(model, train_config("nope"))


def test_frozen_keeps_weights_and_batchnorm_stats() -> None:
    """Pretrained encoders (with BatchNorm) do not move at all; the from-scratch one trains."""
    model = make_model({"image", "audio"})
    frozen_before = {m: snapshot(model.encoder(m)) for m in ("image", "audio")}
    text_before = snapshot(model.encoder("text"))
    changed: list[bool] = []

    def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
        changed.append(not same(text_before, snapshot(model.encoder("text"))))

    train, val = splits()
    [plan] = build_plans(model, train_config("frozen"))
    assert plan.frozen == {"image", "audio"}
    fit(model, train, val, train_config("frozen"), plan, N_CLASSES, progress)
    for m, before in frozen_before.items():
        assert same(before, snapshot(model.encoder(m))), f"{m} encoder (weights or BN statistics) changed"
    assert all(changed), "the from-scratch text encoder should train"


def test_lp_ft_switches_phases() -> None:
    """Phase 1: encoder frozen and unchanged; phase 2: encoder trainable and changing."""
    model = make_model({"image"})
    before = snapshot(model.encoder("image"))
    seen: list[tuple[float, bool, bool]] = []

    def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
        enc = model.encoder("image")
        grads = any(p.requires_grad for p in enc.parameters())
        seen.append((fig["phase"], grads, not same(before, snapshot(enc))))

    cfg = train_config("lp-ft")
    train, val = splits()
    plans = build_plans(model, cfg)
    assert [p.phase for p in plans] == ["linear-probe", "fine-tune"]
    history = History()
    for plan in plans:
        fit(model, train, val, cfg, plan, N_CLASSES, progress, history=history)
    assert history.phases == ["linear-probe", "fine-tune"]
    assert [e["phase"] for e in history.epochs] == [1.0, 1.0, 2.0, 2.0]
    assert [e["epoch"] for e in history.epochs] == [1.0, 2.0, 3.0, 4.0]
    assert seen[:2] == [(1.0, False, False)] * 2
    assert all(phase == 2.0 and grads and moved for phase, grads, moved in seen[2:])


def test_partial_updates_only_the_last_blocks() -> None:
    """partial_blocks=2 on the image CNN: its last conv block and projection move, nothing earlier."""
    model = make_model({"image"})
    blocks = model.encoder("image").blocks()
    early, late = blocks[:-2], blocks[-2:]
    early_before = [snapshot(b) for b in early]
    late_before = [snapshot(b) for b in late]
    audio_before = snapshot(model.encoder("audio"))
    cfg = train_config("partial", partial_blocks=2)
    [plan] = build_plans(model, cfg)
    checks: list[tuple[bool, bool, bool]] = []

    def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
        checks.append((all(same(a, snapshot(b)) for a, b in zip(early_before, early, strict=True)),
                       all(not same(a, snapshot(b)) for a, b in zip(late_before, late, strict=True)),
                       not same(audio_before, snapshot(model.encoder("audio")))))

    train, val = splits()
    fit(model, train, val, cfg, plan, N_CLASSES, progress)
    assert checks and all(early and late and audio for early, late, audio in checks), checks


def test_partial_rejects_bad_settings() -> None:
    """k < 1, or naming an encoder without pretrained weights, is a ConfigError."""
    from mmedge.train.peft_modes import partial_plan

    model = make_model({"image"})
    with pytest.raises(ConfigError, match="partial_blocks"):
        build_plans(model, train_config("partial", partial_blocks=0))
    with pytest.raises(ConfigError, match="pretrained"):
        partial_plan(model, train_config("partial"), {"audio"})


def test_full_mode_uses_encoder_lr_mult() -> None:
    """full: backbones of pretrained encoders get lr × encoder_lr_mult, the rest lr."""
    model = make_model({"image"})
    [plan] = build_plans(model, train_config("full", lr=1e-2, encoder_lr_mult=0.1))
    lrs = sorted(float(g["lr"]) for g in plan.param_groups)  # type: ignore[arg-type]
    assert lrs == pytest.approx([1e-3, 1e-2])


def test_fit_keeps_earlier_best_when_a_phase_does_not_improve() -> None:
    """A phase that never beats the best monitored value so far restores the earlier weights."""
    model = make_model(set())
    train, val = splits()
    before = snapshot(model)
    for monitor, unbeatable in (("val_accuracy", 1.1), ("val_loss", -1.0)):
        history = History(monitor=monitor, best_value=unbeatable)
        params = [p for p in model.parameters()]
        cfg = train_config("full", epochs=1, monitor=monitor)
        fit(model, train, val, cfg, FitPlan([{"params": params, "lr": 1e-2}]), N_CLASSES, history=history)
        assert same(before, snapshot(model))
        assert history.phases == ["train"] and len(history.epochs) == 1 and history.best_value == unbeatable


def test_pretrained_batchnorm_keeps_running_stats_in_full_mode() -> None:
    """Fine-tuning a pretrained backbone trains BatchNorm's affine weights but never its statistics."""
    model = make_model({"image"})
    bn: Any = model.encoder("image").cnn.features[0][1]  # type: ignore[union-attr,index]
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    weight = bn.weight.detach().clone()
    cfg = train_config("full")
    [plan] = build_plans(model, cfg)
    moved: list[bool] = []

    def progress(epoch: int, epochs: int, fig: dict[str, float]) -> None:
        moved.append(not torch.equal(weight, bn.weight.detach()))

    train, val = splits()
    fit(model, train, val, cfg, plan, N_CLASSES, progress)
    assert all(moved)
    assert torch.equal(stats[0], bn.running_mean) and torch.equal(stats[1], bn.running_var)
