"""Linear probe of a method's self-supervised stage: does pre-training help?

For every fold of a planned run, the method runs its self-supervised stage alone
(:meth:`affectlab.methods.base.Method.pretext_features` with ``pretrain=True``) and, separately,
keeps the same architecture at its random initialisation (``pretrain=False``, same seed). A
logistic regression (scikit-learn, balanced class weights, features standardised on the
training part) is fitted on the frozen training features and scored on the test part. Both
arms see the same windows, labels and folds; only the encoder's weights differ, so the gap is
what the pre-training put into the representation.

Windows a frozen encoder cannot encode (NaN rows: a missing modality) are left out of the
probe's training part and counted; at test time they are scored as the training majority class,
so both arms are scored on every test window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from affectlab.errors import ConfigError
from affectlab.run import Plan, fold_splits

ARMS = {"pretrained": True, "random_init": False}


def probe_accuracy(train_features: np.ndarray, y_train: np.ndarray,
                   test_features: np.ndarray, y_test: np.ndarray, seed: int = 0) -> float:
    """Balanced accuracy of a logistic regression on frozen features ``(n, d)``."""
    usable = np.isfinite(train_features).all(axis=1)
    model = make_pipeline(StandardScaler(), LogisticRegression(
        max_iter=2000, class_weight="balanced", random_state=seed))
    model.fit(train_features[usable], y_train[usable])
    encodable = np.isfinite(test_features).all(axis=1)
    majority = np.bincount(y_train[usable]).argmax()
    predicted = np.full(len(y_test), majority)
    if encodable.any():
        predicted[encodable] = model.predict(test_features[encodable])
    return float(balanced_accuracy_score(y_test, predicted))


def linear_probe(plan: Plan, max_folds: int | None = None) -> dict[str, Any]:
    """Per-fold probe accuracy of pre-trained vs random-init features; see the module doc."""
    cls = plan.method_cls
    if not cls.self_supervised:
        raise ConfigError("method", f"{cls.name} has no self-supervised stage to probe")
    folds = plan.folds[:max_folds] if max_folds else plan.folds
    per_fold: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for k, fold in enumerate(folds):
        if set(fold.train_modalities) != set(fold.test_modalities):
            raise ConfigError("protocol", "the linear probe needs the same modalities for "
                              "training and test (not a cross-modal protocol)")
        train, unlabeled, _, test = fold_splits(plan, fold)
        for arm, pretrain in ARMS.items():
            method = cls(cls.Config(**plan.method_config), n_classes=plan.labels.n_classes,
                         seed=plan.cfg.seed + k)
            f_train, f_test = method.pretext_features(train, unlabeled, [train, test],
                                                      pretrain=pretrain)
            per_fold[arm].append(round(probe_accuracy(
                f_train, train.y, f_test, plan.labels.y[fold.test], seed=plan.cfg.seed), 4))
    means = {arm: float(np.mean(v)) for arm, v in per_fold.items()}
    return {"method": cls.name, "folds": [f.name for f in folds],
            **{arm: {"mean": round(means[arm], 4), "per_fold": per_fold[arm]} for arm in ARMS},
            "gain": round(means["pretrained"] - means["random_init"], 4)}
