"""Metrics (scikit-learn) and aggregation over folds and subjects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "kappa")
UNCERTAINTY_METRICS = ("ece", "error_auroc")


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def error_detection_auroc(uncertainty: np.ndarray, y_true: np.ndarray,
                          y_pred: np.ndarray) -> float:
    """AUROC of the uncertainty as a detector of wrong predictions (NaN if all right / wrong)."""
    errors = (y_true != y_pred).astype(int)
    if errors.min() == errors.max():
        return math.nan
    return float(roc_auc_score(errors, uncertainty))


def ovr_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean over classes of the one-vs-rest binary accuracy (CLMER's "multi-class average")."""
    return float(np.mean([((y_true == c) == (y_pred == c)).mean() for c in range(n_classes)]))


def ovr_accuracy_chance(y_true: np.ndarray, n_classes: int) -> float:
    """``ovr_accuracy`` of the best constant prediction on these labels: the level that
    means "nothing learned" (with 9 balanced classes it is 0.80, not 1/9)."""
    return max(ovr_accuracy(y_true, np.full(len(y_true), c), n_classes)
               for c in range(n_classes))


def fold_metrics(y_true: np.ndarray, probs: np.ndarray, n_classes: int,
                 uncertainty: np.ndarray | None = None) -> dict:
    """Every metric of one fold; the confusion matrix as a nested list."""
    y_pred = probs.argmax(axis=1)
    labels = list(range(n_classes))
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", labels=labels,
                                   zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", labels=labels,
                                      zero_division=0)),
        "kappa": _kappa(y_true, y_pred, labels),
        "ovr_accuracy": ovr_accuracy(y_true, y_pred, n_classes),
        "ovr_accuracy_chance": ovr_accuracy_chance(y_true, n_classes),
        "n_test": int(len(y_true)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if uncertainty is not None:
        out["ece"] = expected_calibration_error(probs, y_true)
        out["error_auroc"] = error_detection_auroc(np.asarray(uncertainty), y_true, y_pred)
    return out


def _kappa(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> float:
    if len(np.unique(np.r_[y_true, y_pred])) < 2:
        return 0.0              # kappa is undefined when a single class is seen
    return float(cohen_kappa_score(y_true, y_pred, labels=labels))


def aggregate(per_fold: list[dict], names: tuple[str, ...] | list[str]) -> dict:
    """``{metric: {mean, std, per_fold}}`` over folds (NaN folds ignored in mean / std)."""
    out = {}
    for name in names:
        values = [f.get(name) for f in per_fold]
        if all(v is None for v in values):
            continue
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        finite = arr[np.isfinite(arr)]
        out[name] = {"mean": float(finite.mean()) if finite.size else math.nan,
                     "std": float(finite.std()) if finite.size else math.nan,
                     "per_fold": [None if not np.isfinite(v) else float(v) for v in arr]}
    return out


def per_subject(predictions: pd.DataFrame) -> dict[str, dict]:
    """Accuracy and balanced accuracy per test subject, from the concatenated prediction rows."""
    out = {}
    for subject, rows in predictions.groupby("subject"):
        out[str(subject)] = {
            "accuracy": float(accuracy_score(rows["y_true"], rows["y_pred"])),
            "balanced_accuracy": float(balanced_accuracy_score(rows["y_true"], rows["y_pred"])),
            "n_test": int(len(rows)),
        }
    return out


def oracle_best_epoch(epoch_probs: np.ndarray, y_true: np.ndarray) -> dict:
    """The figure some papers report: the best test accuracy over epochs. It uses test labels
    for selection, so it is never the honest result and is labelled ``oracle_best_epoch``."""
    accuracies = (epoch_probs.argmax(axis=2) == y_true[None, :]).mean(axis=1)
    best = int(accuracies.argmax())
    return {"accuracy": float(accuracies[best]), "epoch": best + 1,
            "n_epochs": int(len(accuracies))}
