"""Classification metrics and modality-subset evaluation (numpy only; shared by train and eval)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions (0.0 on an empty set)."""
    return float((pred == labels).mean()) if len(labels) else 0.0


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def per_class_report(pred: np.ndarray, labels: np.ndarray, names: list[str]) -> list[dict[str, float | str]]:
    """Precision, recall, F1 and support for each class."""
    cm = confusion_matrix(pred, labels, len(names))
    rows: list[dict[str, float | str]] = []
    for i, name in enumerate(names):
        tp = cm[i, i]
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"label": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "support": float(cm[i].sum())})
    return rows


def macro_f1(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over classes that occur in labels or predictions."""
    cm = confusion_matrix(pred, labels, n_classes)
    scores = []
    for i in range(n_classes):
        if cm[i].sum() == 0 and cm[:, i].sum() == 0:
            continue
        tp = cm[i, i]
        denom = cm[i].sum() + cm[:, i].sum()
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """All non-empty subsets of `modalities`, smallest first (7 for three modalities)."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


def subset_name(subset: tuple[str, ...]) -> str:
    """'text+image' style name."""
    return "+".join(subset)


def subset_present(available: np.ndarray, modalities: list[str], subset: tuple[str, ...]) -> np.ndarray:
    """Presence mask restricted to `subset` (a modality counts only where the sample has it)."""
    keep = np.array([m in subset for m in modalities], dtype=np.float32)
    return available * keep


LogitsFn = Callable[[np.ndarray], np.ndarray]  # present mask [N, M] → logits [N, C]


def evaluate_subsets(logits_fn: LogitsFn, available: np.ndarray, labels: np.ndarray, modalities: list[str],
                     n_classes: int) -> dict[str, dict[str, float]]:
    """Accuracy and macro-F1 for every modality subset and for 'all' (each sample as it is).

    Rows with none of the subset's modalities are left out of that subset's figures.
    """
    results: dict[str, dict[str, float]] = {}
    for subset in subsets(modalities):
        present = subset_present(available, modalities, subset)
        rows = present.sum(axis=1) > 0
        pred = logits_fn(present)[rows].argmax(axis=1)
        results[subset_name(subset)] = {"accuracy": accuracy(pred, labels[rows]),
                                        "macro_f1": macro_f1(pred, labels[rows], n_classes),
                                        "n": float(rows.sum())}
    pred_all = logits_fn(available).argmax(axis=1)
    results["all"] = {"accuracy": accuracy(pred_all, labels), "macro_f1": macro_f1(pred_all, labels, n_classes),
                      "n": float(len(labels))}
    return results
