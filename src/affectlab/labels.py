"""Label schemes: from a WindowSet's metadata (ratings, native labels) to class indices.

``binary_valence`` / ``binary_arousal``: rating > threshold is class 1 (high). The threshold
defaults to the middle of the dataset's scale (5 on 1-9, 3 on DREAMER's 1-5); note that TorchEEG
(and SGMC's released code) use >= and so move a rating of exactly 5.00 to the high class:
``inclusive=True`` gives that reading (``quadrant`` follows it too).
``quadrant``: 0 LVLA, 1 LVHA, 2 HVLA, 3 HVHA. ``grid9``: valence bin x 3 + arousal bin with bins
[1, 3], (3, 6], (6, 9] (CLMER; 1-9 scales only). ``video_quadrant``: the quadrant of the
stimulus rather than of the viewer's own rating (CLMER classifies AMIGOS' videos by the
quadrant AMIGOS chose them for). The release holds no table of those quadrants, so a video's
quadrant is that of its mean valence and arousal over every participant's rating in the data
(one value per trial, so each participant counts once); every window of a video then has one
class, whoever watched it. The test subjects' ratings enter that mean (a label definition, not
an input). ``native``: the dataset's discrete classes
(SEED 3, SEED-IV 4, SEED-V 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from affectlab.datasets import get_spec
from affectlab.errors import ConfigError, UnknownNameError

SCHEMES = ("binary_valence", "binary_arousal", "quadrant", "video_quadrant", "grid9", "native")


@dataclass(frozen=True)
class Labels:
    """Class index per window (``-1`` where undefined) and the class names."""

    y: np.ndarray
    classes: tuple[str, ...]
    scheme: str

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def defined(self) -> np.ndarray:
        return self.y >= 0


def default_scheme(dataset: str) -> str:
    """``native`` for datasets with discrete classes (the SEED family), else
    ``binary_valence``."""
    return "native" if get_spec(dataset).native_classes is not None else "binary_valence"


def default_threshold(dataset: str) -> float:
    scale = get_spec(dataset).rating_scale
    return 5.0 if scale is None else (scale[0] + scale[1]) / 2


def _binary(values: np.ndarray, threshold: float, inclusive: bool = False) -> np.ndarray:
    y = (values >= threshold if inclusive else values > threshold).astype(np.int64)
    y[~np.isfinite(values)] = -1
    return y


def _stimulus_means(meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the mean valence and arousal of its stimulus over all trials showing it."""
    if meta["stimulus"].fillna("").eq("").any():
        raise ConfigError("labels", "video_quadrant needs every window's stimulus id; "
                                    "some windows have none")
    trials = meta.drop_duplicates(["subject", "session", "trial"])
    means = trials.groupby("stimulus")[["valence", "arousal"]].mean()
    per_window = means.reindex(meta["stimulus"])
    return per_window["valence"].to_numpy(np.float64), per_window["arousal"].to_numpy(np.float64)


def make_labels(meta: pd.DataFrame, dataset: str, scheme: str,
                threshold: float | None = None, inclusive: bool = False) -> Labels:
    """Labels of every window under ``scheme``; a scheme that does not fit is a ConfigError.

    inclusive: a rating equal to the threshold is high (``>=``) instead of low (``>``)."""
    if scheme not in SCHEMES:
        raise UnknownNameError("label scheme", scheme, SCHEMES)
    spec = get_spec(dataset)
    if scheme == "native":
        if spec.native_classes is None:
            raise ConfigError("labels", f"{spec.name} has no native discrete classes; use one of "
                                        "binary_valence, binary_arousal, quadrant, grid9")
        y = meta["native_label"].to_numpy(np.int64)
        return Labels(y, spec.native_classes, scheme)
    if spec.rating_scale is None or meta["valence"].isna().all():
        raise ConfigError("labels", f"{spec.name} has no valence / arousal ratings; use 'native'")
    thr = default_threshold(spec.name) if threshold is None else float(threshold)
    low, high = spec.rating_scale
    if not low <= thr < high:
        raise ConfigError("labels.threshold", f"{thr} outside the rating scale {low}-{high}")
    valence = meta["valence"].to_numpy(np.float64)
    arousal = meta["arousal"].to_numpy(np.float64)
    if scheme == "binary_valence":
        return Labels(_binary(valence, thr, inclusive), ("low_valence", "high_valence"), scheme)
    if scheme == "binary_arousal":
        return Labels(_binary(arousal, thr, inclusive), ("low_arousal", "high_arousal"), scheme)
    if scheme == "video_quadrant":
        valence, arousal = _stimulus_means(meta)
    if scheme in ("quadrant", "video_quadrant"):
        v, a = _binary(valence, thr, inclusive), _binary(arousal, thr, inclusive)
        y = np.where((v < 0) | (a < 0), -1, 2 * v + a)
        return Labels(y, ("LVLA", "LVHA", "HVLA", "HVHA"), scheme)
    if (low, high) != (1.0, 9.0):
        raise ConfigError("labels", f"grid9 needs a 1-9 rating scale; {spec.name} uses "
                                    f"{low:g}-{high:g}")
    bins = np.array([3.0, 6.0])
    v = np.digitize(valence, bins, right=True)
    a = np.digitize(arousal, bins, right=True)
    y = (3 * v + a).astype(np.int64)
    y[~(np.isfinite(valence) & np.isfinite(arousal))] = -1
    names = tuple(f"V{i}A{j}" for i in ("low", "mid", "high") for j in ("low", "mid", "high"))
    return Labels(y, names, scheme)
