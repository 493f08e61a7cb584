"""Metrics against scikit-learn and hand-computed values (a wrong denominator or orientation fails)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, precision_recall_fscore_support

from mmedge.eval.metrics import (
    accuracy,
    confusion_matrix,
    evaluate_subsets,
    macro_f1,
    per_class_report,
    subset_present,
    subsets,
)


def _random(seed: int, n: int = 200, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
    return pred, labels


def test_hand_computed() -> None:
    pred, labels = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0])
    assert accuracy(pred, labels) == pytest.approx(4 / 6)
    np.testing.assert_array_equal(confusion_matrix(pred, labels, 3), [[1, 0, 1], [1, 1, 0], [0, 0, 2]])
    # F1 per class: 2TP / (2TP + FP + FN) = 2/4, 2/3, 4/5
    assert macro_f1(pred, labels, 3) == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)
    assert accuracy(np.array([], int), np.array([], int)) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scikit_learn(seed: int) -> None:
    pred, labels = _random(seed)
    np.testing.assert_array_equal(confusion_matrix(pred, labels, 6), sk_confusion(labels, pred, labels=range(6)))
    present = sorted(set(labels) | set(pred))
    assert macro_f1(pred, labels, 6) == pytest.approx(f1_score(labels, pred, labels=present, average="macro"))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(6), zero_division=0)
    rows = per_class_report(pred, labels, [str(i) for i in range(6)])
    np.testing.assert_allclose([x["precision"] for x in rows], p)
    np.testing.assert_allclose([x["recall"] for x in rows], r)
    np.testing.assert_allclose([x["f1"] for x in rows], f)
    np.testing.assert_allclose([x["support"] for x in rows], s)


def test_classes_absent_from_both_sides_do_not_count() -> None:
    pred, labels = np.array([0, 1]), np.array([0, 1])
    assert macro_f1(pred, labels, 10) == 1.0


def test_subsets_mask_and_leave_out_rows_without_the_subset() -> None:
    mods = ["text", "image", "audio"]
    assert len(subsets(mods)) == 7 and subsets(mods)[-1] == ("text", "image", "audio")
    available = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], np.float32)
    np.testing.assert_array_equal(subset_present(available, mods, ("text",)), [[1, 0, 0], [0, 0, 0], [1, 0, 0]])
    labels = np.array([0, 1, 2])
    seen: list[np.ndarray] = []

    def logits(present: np.ndarray) -> np.ndarray:
        seen.append(present)
        return np.eye(3)[labels]  # always right

    figures = evaluate_subsets(logits, available, labels, mods, 3)
    assert figures["text"]["n"] == 2 and figures["audio"]["n"] == 1 and figures["all"]["n"] == 3
    assert all(f["accuracy"] == 1.0 for f in figures.values())
    np.testing.assert_array_equal(seen[-1], available)  # 'all' uses each sample as it is
