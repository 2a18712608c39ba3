"""Baselines: logistic regression and linear SVM (scikit-learn) and a supervised MLP (PyTorch).

All three work on the flattened window features of the modalities the Split allows, standardised
with statistics of the training part only.
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from affectlab.methods.base import Method, MethodConfig, Predictions, Split, register_method
from affectlab.training import (
    class_weights,
    full_precision,
    minibatches,
    seed_everything,
    standardize_fit,
)

# Feature-space baselines cannot map one modality's features onto another's: no cross_modal.
FEATURE_PROTOCOLS = ("subject_dependent", "loso", "subject_kfold", "cross_session",
                     "stimulus_kfold", "label_ratio", "random_window")


def flat_features(split: Split) -> np.ndarray:
    """``(n, sum of flattened per-window sizes)`` of the Split's allowed modalities."""
    parts = [split.windows.numpy(name).reshape(len(split), -1) for name in split.modalities]
    return np.concatenate(parts, axis=1).astype(np.float64)


def _full_probs(estimator, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities over all ``n_classes`` (classes absent in training get 0)."""
    probs = np.zeros((len(x), n_classes))
    probs[:, estimator.classes_] = estimator.predict_proba(x)
    return probs


class LogRegConfig(MethodConfig):
    C: float = Field(1.0, gt=0, description="inverse regularisation strength")
    max_iter: int = Field(1000, ge=10)
    class_weight: Literal["balanced"] | None = "balanced"


@register_method
class LogisticRegressionBaseline(Method):
    name = "logreg"
    protocols = FEATURE_PROTOCOLS
    summary = "logistic regression on flattened window features (scikit-learn)"
    Config = LogRegConfig
    presets = {"default": {}, "paper": {}, "fast": {"max_iter": 200}}

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(
            C=cfg.C, max_iter=cfg.max_iter, class_weight=cfg.class_weight,
            random_state=self.seed))
        self.model_.fit(flat_features(train), train.y)
        return self

    def predict(self, test: Split) -> Predictions:
        return Predictions(_full_probs(self.model_, flat_features(test), self.n_classes))


class SVMConfig(MethodConfig):
    C: float = Field(0.1, gt=0)
    max_iter: int = Field(5000, ge=10)
    class_weight: Literal["balanced"] | None = "balanced"


@register_method
class LinearSVMBaseline(Method):
    name = "linear_svm"
    protocols = FEATURE_PROTOCOLS
    summary = "linear SVM on flattened window features, probabilities by sigmoid calibration"
    Config = SVMConfig
    presets = {"default": {}, "paper": {}, "fast": {"max_iter": 1000}}

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        svm = LinearSVC(C=cfg.C, max_iter=cfg.max_iter, class_weight=cfg.class_weight,
                        random_state=self.seed)
        counts = np.bincount(train.y)
        cv = int(min(3, counts[counts > 0].min())) if len(counts[counts > 0]) > 1 else 0
        estimator = CalibratedClassifierCV(svm, cv=cv, method="sigmoid") if cv >= 2 else svm
        self.model_ = make_pipeline(StandardScaler(), estimator)
        self.model_.fit(flat_features(train), train.y)
        return self

    def predict(self, test: Split) -> Predictions:
        x = flat_features(test)
        if hasattr(self.model_, "predict_proba"):
            return Predictions(_full_probs(self.model_, x, self.n_classes))
        probs = np.zeros((len(x), self.n_classes))
        probs[np.arange(len(x)), self.model_.predict(x)] = 1.0
        return Predictions(probs)


class MLPConfig(MethodConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.3, ge=0, lt=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(100, ge=1)
    patience: int = Field(10, ge=1, description="early-stopping patience on the validation part")


@register_method
class MLPBaseline(Method):
    name = "mlp"
    protocols = FEATURE_PROTOCOLS
    summary = "supervised MLP on flattened window features; early stopping on validation loss"
    Config = MLPConfig
    presets = {"default": {}, "paper": {}, "fast": {"epochs": 15, "hidden": [64], "patience": 5}}

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        generator = seed_everything(self.seed)
        x = torch.as_tensor(flat_features(train), dtype=torch.float32)
        self.mean_, self.std_ = standardize_fit(x)
        x = ((x - self.mean_) / self.std_).to(self.device)
        y = torch.as_tensor(train.y, dtype=torch.long, device=self.device)
        self.model_ = self._build(x.shape[1]).to(self.device)
        optimiser = torch.optim.Adam(self.model_.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        loss_fn = nn.CrossEntropyLoss(weight=class_weights(train.y, self.n_classes).to(
            self.device))
        x_val = y_val = None
        if val is not None and len(val):
            x_val = self._transform(val)
            y_val = torch.as_tensor(val.y, dtype=torch.long, device=self.device)
        best, best_state, waited = np.inf, None, 0
        for epoch in range(cfg.epochs):
            self.model_.train()
            for idx in minibatches(len(x), cfg.batch_size, generator, device=self.device):
                optimiser.zero_grad()
                loss_fn(self.model_(x[idx]), y[idx]).backward()
                optimiser.step()
            if x_val is None:
                self.report_epoch(epoch, cfg.epochs)
                continue
            val_loss = self._loss(loss_fn, x_val, y_val)
            self.report_epoch(epoch, cfg.epochs, val_loss=val_loss)
            if val_loss < best - 1e-4:
                best, best_state, waited = val_loss, copy.deepcopy(self.model_.state_dict()), 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        return self

    def _build(self, n_in: int) -> nn.Module:
        layers: list[nn.Module] = []
        for width in self.config.hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU(), nn.Dropout(self.config.dropout)]
            n_in = width
        return nn.Sequential(*layers, nn.Linear(n_in, self.n_classes))

    def _transform(self, split: Split) -> torch.Tensor:
        x = torch.as_tensor(flat_features(split), dtype=torch.float32)
        return ((x - self.mean_) / self.std_).to(self.device)

    @torch.no_grad()
    def _loss(self, loss_fn, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model_.eval()
        return float(loss_fn(self.model_(x), y))

    @torch.no_grad()
    def predict(self, test: Split) -> Predictions:
        self.model_.eval()
        logits = self.model_(self._transform(test))
        return Predictions(torch.softmax(full_precision(logits), dim=1).cpu().numpy())
