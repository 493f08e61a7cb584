"""Metrics against scikit-learn and hand-computed values (a wrong denominator or orientation fails)."""

from __future__ import annotations

import warnings

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


def test_confusion_matrix_is_int64_counts() -> None:
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    assert cm.dtype == np.int64 and cm.tolist() == [[1, 1], [0, 1]]


def test_zero_divisions_give_zero_without_warnings() -> None:
    # class 0: never predicted (precision 0/0); class 2: never true (recall 0/0); class 1: p = r = 0 (f1 0/0)
    pred, labels = np.array([1, 1, 2]), np.array([0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/0 would warn (and give nan)
        rows = per_class_report(pred, labels, ["a", "b", "c"])
        assert macro_f1(np.array([], int), np.array([], int), 3) == 0.0
    assert [r["label"] for r in rows] == ["a", "b", "c"]
    assert [(r["precision"], r["recall"], r["f1"], r["support"]) for r in rows] == [
        (0.0, 0.0, 0.0, 2.0), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.0)]


def test_macro_f1_counts_classes_only_predicted_or_only_true() -> None:
    # class 0: true, never predicted (F1 0); class 1: absent from both (skipped); class 2: predicted, never true
    # (F1 0); class 3: correct (F1 1) → the mean over classes 0, 2, 3 is 1/3 (a `break` at class 1 gives 0)
    pred, labels = np.array([2, 3, 3]), np.array([0, 3, 3])
    assert macro_f1(pred, labels, 4) == pytest.approx(1 / 3)
    assert macro_f1(pred, labels, 4) == pytest.approx(f1_score(labels, pred, labels=[0, 2, 3], average="macro"))


def test_subset_figures_use_their_own_predictions_and_labels() -> None:
    mods = ["text", "image"]
    available = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], np.float32)
    labels = np.array([0, 1, 1, 0])

    def logits(present: np.ndarray) -> np.ndarray:  # predicts class 1 wherever text is present
        return np.stack([1 - present[:, 0], present[:, 0]], axis=1)

    figures = evaluate_subsets(logits, available, labels, mods, 2)
    text_pred, text_labels = np.array([1, 1, 1]), labels[[0, 1, 3]]
    assert figures["text"]["macro_f1"] == pytest.approx(macro_f1(text_pred, text_labels, 2))
    assert figures["text"]["accuracy"] == pytest.approx(1 / 3) and figures["image"]["accuracy"] == pytest.approx(2 / 3)
    all_pred = np.array([1, 1, 0, 1])
    assert figures["all"]["macro_f1"] == pytest.approx(macro_f1(all_pred, labels, 2))
    assert figures["all"]["accuracy"] == accuracy(all_pred, labels) == 0.25
