"""The monitored figure: ties go to the later epoch, min-delta and patience, val figures against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmedge.train.monitor import EarlyStopping, val_figures


def run(stopper: EarlyStopping, values: list[float]) -> list[bool]:
    bests = []
    for epoch, value in enumerate(values, start=1):
        if stopper.stopped:
            break
        bests.append(stopper.update(value, epoch))
    return bests


def test_ties_go_to_the_later_epoch():
    stopper = EarlyStopping("val_accuracy", patience=10)
    assert run(stopper, [0.5, 0.7, 0.7, 0.6, 0.7]) == [True, True, True, False, True]
    assert stopper.best_epoch == 5 and stopper.best == 0.7
    loss = EarlyStopping("val_loss", patience=10)
    run(loss, [2.0, 1.0, 1.0, 1.5])
    assert loss.best_epoch == 3


def test_patience_counts_epochs_without_improvement():
    stopper = EarlyStopping("val_loss", patience=2)
    run(stopper, [3.0, 2.0, 2.5, 2.0, 1.0])
    assert stopper.stopped and stopper.best_epoch == 4  # epoch 4 ties the best: it is kept, but resets nothing
    assert stopper.reason == ("early stop at epoch 4: val_loss did not improve by more than 0 for 2 epochs "
                              "(best 2.0000 at epoch 4)")


def test_min_delta_needs_a_real_improvement_to_reset_patience():
    stopper = EarlyStopping("val_macro_f1", patience=2, min_delta=0.05)
    assert run(stopper, [0.50, 0.52, 0.54, 0.60]) == [True, True, True]
    assert stopper.stopped and stopper.best_epoch == 3  # small gains still move the best checkpoint


def test_round_trip_for_the_checkpoint():
    stopper = EarlyStopping("val_loss", patience=3)
    run(stopper, [1.0, 0.9, 0.95])
    again = EarlyStopping.from_dict(stopper.to_dict())
    assert again == stopper and again.update(0.8, 4) and again.stale == 0


def test_val_figures_match_torch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=gen) * 3
    labels = torch.randint(0, 4, (50,), generator=gen)
    fig = val_figures(logits.numpy(), labels.numpy(), 4)
    assert fig["val_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-6)
    assert fig["val_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert 0.0 <= fig["val_macro_f1"] <= 1.0
    perfect = val_figures(np.eye(3, dtype=np.float32) * 50, np.arange(3), 3)
    assert perfect["val_accuracy"] == perfect["val_macro_f1"] == 1.0 and perfect["val_loss"] < 1e-6


def test_nan_is_never_best_and_is_a_clear_error():
    from mmedge.errors import ConfigError

    stop = EarlyStopping("val_loss", patience=5)
    with pytest.raises(ConfigError, match=r"train\.monitor val_loss is NaN at epoch 1"):
        stop.update(float("nan"), 1)
    assert stop.best is None
    restored = EarlyStopping("val_loss", patience=5, best=float("nan"), best_epoch=1)  # e.g. an older checkpoint
    assert restored.update(0.7, 2) and restored.best == 0.7 and restored.best_epoch == 2
