"""Your own model as an affectlab method: a scikit-learn classifier or a PyTorch module.

::

    Forest = SklearnMethod(RandomForestClassifier(n_estimators=300))
    Net = TorchMethod(lambda n_features, n_classes: nn.Sequential(
        nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, n_classes)), epochs=50)
    affectlab.run(Forest, "deap", root, protocol="loso")

Both return a :class:`~affectlab.methods.Method` subclass: the runner builds one per fold, with
the fold's seed and device, exactly as it builds the built-in methods. Defined at module level
(``mymodule.py``), the class is also ``--method mymodule:Forest`` on the command line and runs
under every executor. Inputs are the windows' features of the modalities a fold allows,
standardised with statistics of the training part only; not for ``cross_modal`` (whose train
and test modalities differ in shape).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, ValidationError, create_model
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from affectlab.errors import config_error
from affectlab.methods.base import Method, MethodConfig, Predictions, Split
from affectlab.methods.baselines import FEATURE_PROTOCOLS, flat_features
from affectlab.training import (
    Inputs,
    class_weights,
    full_precision,
    seed_everything,
    standardize_fit,
    take,
    train_classifier,
)


def _method_class(base: type[Method], name: str, summary: str, **attributes: Any) -> type:
    """A subclass of ``base`` named after ``name``, whose module is the caller's (so that it
    is found there by identity: ``mymodule:Forest``)."""
    caller = sys._getframe(2).f_globals.get("__name__", "__main__")
    class_name = "".join(part.capitalize() for part in name.split("_")) or base.__name__
    return type(class_name, (base,), {"name": name, "summary": summary,
                                      "__module__": caller, **attributes})


# --------------------------------------------------------------------------- scikit-learn

class SklearnConfig(MethodConfig):
    params: dict[str, Any] = Field(default_factory=dict, description="parameters set on each "
                                   "fold's clone of the estimator, e.g. method.params.C=0.1")
    standardize: bool = Field(True, description="z-score every feature with the training "
                              "part's mean and std first")


class SklearnAdapter(Method):
    """Base of :func:`SklearnMethod` classes: a clone of ``estimator`` per fold."""

    estimator: ClassVar[Any] = None
    Config = SklearnConfig
    protocols = FEATURE_PROTOCOLS

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        estimator = clone(self.estimator).set_params(**self.config.params)
        if estimator.get_params(deep=False).get("random_state", 0) is None:
            estimator.set_params(random_state=self.seed)      # the fold's seed
        steps = [StandardScaler(), estimator] if self.config.standardize else [estimator]
        self.model_ = make_pipeline(*steps).fit(flat_features(train), train.y)
        return self

    def predict(self, test: Split) -> Predictions:
        """``(n, n_classes)`` probabilities (one-hot for an estimator without
        ``predict_proba``); classes absent from training get 0."""
        x = flat_features(test)
        probs = np.zeros((len(x), self.n_classes))
        if hasattr(self.model_, "predict_proba"):
            probs[:, self.model_.classes_] = self.model_.predict_proba(x)
        else:
            probs[np.arange(len(x)), self.model_.predict(x)] = 1.0
        return Predictions(probs)


def SklearnMethod(estimator: Any, name: str | None = None,
                  summary: str | None = None) -> type[Method]:
    """A method class for any scikit-learn classifier: per fold, a clone of ``estimator``
    (its ``random_state`` set to the fold's seed when it is ``None``) is fitted on the
    flattened features ``(n, d)`` of the allowed modalities, standardised on the training
    part. Options: ``method.params.<name>`` (set on the clone), ``method.standardize``."""
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(f"SklearnMethod needs a scikit-learn estimator, got {estimator!r}")
    kind = type(estimator).__name__
    return _method_class(SklearnAdapter, name or f"sklearn_{kind.lower()}",
                         summary or f"scikit-learn {kind} on flattened window features",
                         estimator=estimator)


# --------------------------------------------------------------------------- PyTorch

class TorchConfig(MethodConfig):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(10, ge=1, description="epochs without a lower validation loss "
                          "before training stops (the best epoch's weights are kept)")
    class_weighted: bool = Field(True, description="inverse-frequency class weights in the "
                                 "cross-entropy")


class TorchAdapter(Method):
    """Base of :func:`TorchMethod` classes: a fresh module per fold, trained with
    :func:`~affectlab.training.train_classifier` on the method's device."""

    module_factory: ClassVar[Callable[..., nn.Module]]
    inputs: ClassVar[str] = "flat"
    Config = TorchConfig
    protocols = FEATURE_PROTOCOLS

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        cfg = self.config
        generator = seed_everything(self.seed)
        raw = self._raw(train)
        self.stats_ = {name: standardize_fit(value) for name, value in raw.items()}
        x = self._standardised(raw)
        y = torch.as_tensor(train.y, dtype=torch.long, device=self.device)
        shapes = {name: tuple(value.shape[1:]) for name, value in raw.items()}
        factory = type(self).module_factory
        self.model_ = (factory(shapes["x"][0], self.n_classes) if self.inputs == "flat"
                       else factory(shapes, self.n_classes)).to(self.device)
        held_out = None
        if val is not None and len(val):
            held_out = (self._inputs(val), torch.as_tensor(val.y, dtype=torch.long,
                                                           device=self.device))
        weight = class_weights(train.y, self.n_classes).to(self.device) \
            if cfg.class_weighted else None
        self.training_ = train_classifier(
            self.model_, x, y, held_out, epochs=cfg.epochs, batch_size=cfg.batch_size,
            lr=cfg.lr, weight_decay=cfg.weight_decay, patience=cfg.patience,
            class_weight=weight, generator=generator, report=self.report_epoch)
        return self

    @torch.no_grad()
    def predict(self, test: Split) -> Predictions:
        """Softmax of the module's logits, ``(n, n_classes)``, in batches."""
        self.model_.eval()
        x = self._inputs(test)
        batches = torch.arange(len(test), device=self.device).split(self.config.batch_size)
        logits = [self.model_(take(x, idx)) for idx in batches]
        return Predictions(torch.softmax(full_precision(torch.cat(logits)), dim=1).double()
                           .cpu().numpy())

    def _raw(self, split: Split) -> dict[str, torch.Tensor]:
        """``{"x": (n, d)}`` (flat) or ``{modality: (n, ...)}`` float32, on the CPU."""
        if self.inputs == "flat":
            return {"x": torch.as_tensor(flat_features(split), dtype=torch.float32)}
        return {name: split.windows.tensor(name).float() for name in split.modalities}

    def _inputs(self, split: Split) -> Inputs:
        """Standardised inputs on the device: a tensor (flat) or a dict of modalities."""
        return self._standardised(self._raw(split))

    def _standardised(self, raw: dict[str, torch.Tensor]) -> Inputs:
        out = {}
        for name, value in raw.items():
            mean, std = self.stats_[name]
            out[name] = ((value - mean) / std).to(self.device)
        return out["x"] if self.inputs == "flat" else out


def TorchMethod(module_factory: Callable[..., nn.Module],
                inputs: Literal["flat", "modalities"] = "flat", name: str | None = None,
                summary: str | None = None, **defaults: Any) -> type[Method]:
    """A method class for your own ``torch.nn.Module``, built per fold and trained with
    Adam on cross-entropy in minibatches, with early stopping on the validation part.

    module_factory: ``inputs="flat"``: ``(n_features, n_classes) -> module`` whose forward takes
        ``(batch, n_features)``; ``inputs="modalities"``: ``({modality: per-window shape},
        n_classes) -> module`` whose forward takes ``{modality: (batch, *shape)}``. Either
        returns logits ``(batch, n_classes)``; inputs are standardised on the training part.
    defaults: the training options' defaults (``epochs``, ``batch_size``, ``lr``,
        ``weight_decay``, ``patience``, ``class_weighted``); each is also ``--set
        method.<option>``. The ``fast`` preset trains at most 5 epochs.
    """
    if inputs not in ("flat", "modalities"):
        raise ValueError(f"inputs must be 'flat' or 'modalities', got {inputs!r}")
    config = _with_defaults(TorchConfig, defaults)
    label = name or f"torch_{getattr(module_factory, '__name__', 'module').strip('<>')}"
    fast = {"epochs": min(config.model_fields["epochs"].default, 5)}
    return _method_class(TorchAdapter, label, summary or "PyTorch module on window features",
                         module_factory=staticmethod(module_factory), inputs=inputs,
                         Config=config, presets={"default": {}, "paper": {}, "fast": fast})


def _with_defaults(base: type[MethodConfig], defaults: dict[str, Any]) -> type[MethodConfig]:
    """A subclass of ``base`` whose fields default to ``defaults`` (checked; the fields'
    constraints and descriptions kept)."""
    try:
        base(**defaults)
    except ValidationError as exc:
        raise config_error(exc.errors(), "method", base) from None
    fields = {}
    for key, value in defaults.items():
        info = copy.copy(base.model_fields[key])
        info.default = value
        fields[key] = (info.annotation, info)
    return create_model(base.__name__, __base__=base, **fields)
