"""Statistics a reviewer asks for: chance levels, bootstrap confidence intervals over subjects
and paired tests between runs (Wilcoxon, permutation, Holm-corrected).

The unit of every interval and test is the subject (one value per test subject, from the
run's ``per_subject`` table); a metric without per-subject values falls back to the folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
SEED = 0
N_RESAMPLES = 9999
CI_METHOD = "BCa"


# --------------------------------------------------------------------------- chance levels

def chance_levels(y_true: np.ndarray, n_classes: int) -> dict[str, dict[str, float]]:
    """What a classifier that learned nothing scores on these test labels, per metric:
    ``majority`` (always the most frequent class) and ``uniform`` (expected score of a
    uniformly random guess)."""
    y = np.asarray(y_true, dtype=int)
    prior = np.bincount(y, minlength=n_classes) / max(len(y), 1)
    present = int((prior > 0).sum()) or 1
    top = float(prior.max()) if len(y) else math.nan
    guess = 1.0 / n_classes
    f1_uniform = [2 * p * guess / (p + guess) for p in prior]
    return {
        "accuracy": {"majority": top, "uniform": guess},
        "balanced_accuracy": {"majority": 1.0 / present, "uniform": guess},
        "f1_macro": {"majority": 2 * top / (1 + top) / n_classes,
                     "uniform": float(np.mean(f1_uniform))},
        "kappa": {"majority": 0.0, "uniform": 0.0},
    }


def mean_chance(per_fold: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The folds' chance levels averaged as the metrics are (mean over folds)."""
    return {metric: {kind: float(np.mean([f[metric][kind] for f in per_fold]))
                     for kind in per_fold[0][metric]}
            for metric in per_fold[0]} if per_fold else {}


# --------------------------------------------------------------------------- intervals

def unit_values(summary: dict, metric: str) -> tuple[str, dict[str, float]]:
    """``("subjects", {subject: value})`` from the summary's per-subject table when at least
    two subjects have a value of ``metric``; else ``("folds", {fold name: value})``."""
    subjects = {s: v[metric] for s, v in (summary.get("per_subject") or {}).items()
                if v.get(metric) is not None and np.isfinite(v[metric])}
    if len(subjects) >= 2:
        return "subjects", subjects
    entry = (summary.get("metrics") or {}).get(metric, {})
    folds = zip(summary.get("fold_names", []), entry.get("per_fold", []), strict=False)
    return "folds", {str(name): v for name, v in folds if v is not None and np.isfinite(v)}


def bootstrap_ci(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = SEED,
                 ) -> tuple[float | None, float | None, str]:
    """Bootstrap interval of the mean (BCa, fixed seed; percentile where BCa is undefined)
    and the method used; ``None`` with fewer than two values, a point when all are equal."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return None, None, "none"
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0]), "constant"
    for method in (CI_METHOD, "percentile"):
        result = sps.bootstrap((data,), np.mean, confidence_level=confidence,
                               n_resamples=N_RESAMPLES, method=method,
                               rng=np.random.default_rng(seed))
        low, high = map(float, result.confidence_interval)
        if np.isfinite(low) and np.isfinite(high):
            break
    return low, high, method


def mean_ci(summary: dict, metric: str) -> dict[str, object]:
    """Mean over the units of ``metric`` with its bootstrap interval (``ci_low``,
    ``ci_high``), the unit and how many there are."""
    unit, values = unit_values(summary, metric)
    low, high, method = bootstrap_ci(list(values.values()))
    mean = float(np.mean(list(values.values()))) if values else None
    return {"mean": mean, "ci_low": low, "ci_high": high, "unit": unit, "n": len(values),
            "confidence": CONFIDENCE, "method": f"bootstrap {method}", "seed": SEED}


# --------------------------------------------------------------------------- paired tests

def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest p times (m - i), made monotone."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    scaled = np.minimum(1.0, p[order] * (len(p) - np.arange(len(p))))
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (scipy's defaults); 1 when no pair differs."""
    if np.all(a == b):
        return 1.0
    return float(sps.wilcoxon(a, b).pvalue)


def permutation_p(a: np.ndarray, b: np.ndarray, seed: int = SEED) -> float:
    """Two-sided paired permutation p of the mean difference (sign flips; exact when
    2**n <= the resample count)."""
    if np.all(a == b):
        return 1.0
    result = sps.permutation_test((a, b), _mean_difference, permutation_type="samples",
                                  vectorized=True, n_resamples=N_RESAMPLES,
                                  alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def rank_biserial(a: np.ndarray, b: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of ``a - b`` (zero differences left out)."""
    d = a - b
    d = d[d != 0]
    if not d.size:
        return 0.0
    ranks = sps.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def cohens_dz(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean difference over its standard deviation (ddof 1); ``None`` when undefined."""
    d = a - b
    sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    return float(d.mean() / sd) if sd > 0 else None


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """Every paired statistic of ``a`` against ``b`` (differences are a - b)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return {"n": int(x.size), "mean_a": float(x.mean()), "mean_b": float(y.mean()),
            "mean_difference": float((x - y).mean()), "cohens_dz": cohens_dz(x, y),
            "rank_biserial": rank_biserial(x, y), "p_wilcoxon": wilcoxon_p(x, y),
            "p_permutation": permutation_p(x, y)}
