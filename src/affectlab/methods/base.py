"""The method interface every baseline and paper method implements.

::

    method = create_method(name, config, n_classes=..., seed=..., device=...)
    model = method.fit(train, unlabeled=target, val=val)      # Split objects
    pred = model.predict(test)                                 # Predictions

The runner never knows a method's internals; a method never knows a file layout or a protocol.
Labels reach a method only through ``Split.y`` of the training and validation parts; the
unlabelled target part and the test part carry ``y=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from affectlab.data import WindowSet
from affectlab.errors import ConfigError
from affectlab.registry import Registry


@dataclass
class Split:
    """One part of a fold as a method sees it.

    windows: the part's windows (a view). It may hold more modalities than ``modalities``: a
        method may use those only without labels (self-supervised pre-training on paired data);
        the test part of a cross-modal fold holds only its test modality.
    y: ``(n,)`` int class per window, or ``None`` (unlabelled target, test).
    modalities: modalities usable with labels / for prediction in this part.
    """

    windows: WindowSet
    y: np.ndarray | None
    modalities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.windows)

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.windows):
            raise ValueError(f"{len(self.y)} labels for {len(self.windows)} windows")


@dataclass
class Predictions:
    """What ``predict`` returns.

    probs: ``(n, n_classes)`` class probabilities (rows sum to 1).
    uncertainty: optional ``(n,)``, higher = less certain.
    embeddings: optional ``(n, d)`` for plots.
    epoch_probs: optional ``(n_epochs, n, n_classes)`` test probabilities after each epoch, for
        the runner's clearly labelled ``oracle_best_epoch`` figure (the method never sees the
        test labels; only the runner scores these, and only when asked).
    extras: method-specific scalar diagnostics for the fold (e.g. ``fad``).
    """

    probs: np.ndarray
    uncertainty: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    epoch_probs: np.ndarray | None = None
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float64)
        if self.probs.ndim != 2:
            raise ValueError(f"probs must be (n, n_classes), got {self.probs.shape}")
        if not np.isfinite(self.probs).all():
            raise ValueError("probs contain non-finite values")
        if self.uncertainty is not None and len(self.uncertainty) != len(self.probs):
            raise ValueError("uncertainty must have one value per window")


class MethodConfig(BaseModel):
    """Base of every method's options; unknown options are an error."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Method:
    """Base class. Subclasses set the class attributes and implement ``fit`` / ``predict``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: hyper-parameter presets: ``default`` (what a user gets: trains to convergence with
    #: validation-based early stopping within a CPU budget per fold), ``paper`` (the paper's
    #: settings, literally) and ``fast`` (a smoke test of seconds; never a result)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}, "paper": {}, "fast": {}}
    #: uses the unlabelled target part (transductive); declared in the run summary
    transductive: ClassVar[bool] = False
    #: data preset to use when the user gives none, per dataset (``"*"``: any dataset)
    data_presets: ClassVar[dict[str, str]] = {"*": "default"}
    #: presets whose settings depend on the dataset: ``{(preset, dataset): preset to use}``
    dataset_presets: ClassVar[dict[tuple[str, str], str]] = {}
    #: what a same-input baseline (logreg, mlp) reads next to this method: ``None`` = the
    #: method's own data preset; else ``{"preset": name, "options": {data options}}`` (methods
    #: on raw windows: the EEG DE and peripheral statistics of the same recordings and grid)
    baseline_inputs: ClassVar[dict[str, Any] | None] = None
    #: the method has a self-supervised stage, isolated by :meth:`pretext_features` (the
    #: linear probe of :mod:`affectlab.probe` compares it with the random initialisation)
    self_supervised: ClassVar[bool] = False
    #: protocols the method supports (``None``: all)
    protocols: ClassVar[tuple[str, ...] | None] = None
    summary: ClassVar[str] = ""
    #: what ``affectlab demo`` runs for this method (synthetic data, fast preset)
    demo: ClassVar[dict[str, Any]] = {"dataset": "deap", "protocol": "subject_kfold",
                                      "labels": "binary_valence", "options": {}}

    def __init__(self, config: MethodConfig, n_classes: int, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.config = config
        self.n_classes = n_classes
        self.seed = seed
        self.device = torch.device(device)
        #: set by the runner for progress bars: ``on_epoch(epoch, n_epochs, logs)``
        self.on_epoch: Callable[[int, int, dict], None] | None = None

    def report_epoch(self, epoch: int, n_epochs: int, **logs: float) -> None:
        """Call once per training epoch (0-based); drives the runner's epoch progress bar."""
        if self.on_epoch is not None:
            self.on_epoch(epoch, n_epochs, logs)

    def fit(self, train: Split, unlabeled: Split | None = None,
            val: Split | None = None) -> Method:
        raise NotImplementedError

    def predict(self, test: Split) -> Predictions:
        raise NotImplementedError

    def pretext_features(self, train: Split, unlabeled: Split | None, parts: Sequence[Split],
                         pretrain: bool = True) -> list[np.ndarray]:
        """Frozen features of ``parts`` after the self-supervised stage alone.

        With ``pretrain`` the method runs only its self-supervised stage on ``train`` (its
        labels unused) and ``unlabeled``; without it the same architecture keeps its random
        initialisation (same seed). Returns one ``(n_i, d)`` float array per Split of
        ``parts``, computed in eval mode (NaN rows where a window cannot be encoded).
        """
        raise NotImplementedError(f"{self.name} has no self-supervised stage")

    @classmethod
    def uses_test_statistics(cls, config: dict[str, Any]) -> bool:
        """Whether ``config`` normalises the test part with statistics of its own unlabelled
        windows (e.g. per recording); the run summary then declares the run transductive."""
        return False

    @classmethod
    def label_options(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Label options (``labels.<name>``) this method's reading implies under ``config``,
        used where the user sets none (e.g. ``{"inclusive": True}``: rating >= threshold)."""
        return {}

    @classmethod
    def used_modalities(cls, config: dict[str, Any], names: Sequence[str]) -> list[str]:
        """The WindowSet modalities this method reads under ``config`` (default: all of them).

        The runner drops a window only when one of these is missing, and counts it.
        """
        return list(names)

    @classmethod
    def data_preset_for(cls, dataset: str) -> str:
        return cls.data_presets.get(dataset, cls.data_presets.get("*", "default"))

    @classmethod
    def method_preset_for(cls, preset: str, dataset: str) -> str:
        """The hyper-parameter preset ``preset`` means on ``dataset`` (e.g. a paper's
        per-dataset table)."""
        return cls.dataset_presets.get((preset, dataset), preset)


METHODS: Registry[type[Method]] = Registry("method")
PRESET_NAMES = ("default", "paper", "fast")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a :class:`Method` subclass under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    for preset in PRESET_NAMES:
        if preset not in cls.presets:
            raise ValueError(f"method {cls.name} lacks the '{preset}' preset")
    METHODS.add(cls.name, cls)
    return cls


def build_config(cls: type[Method], preset: str = "default",
                 overrides: dict[str, Any] | None = None) -> MethodConfig:
    """Defaults <- preset <- overrides, validated; errors name ``method.<option>``."""
    if preset not in cls.presets:
        raise ConfigError("method_preset", f"unknown preset '{preset}' for {cls.name}; valid: "
                                           f"{', '.join(sorted(cls.presets))}")
    values = {**cls.presets[preset], **(overrides or {})}
    try:
        return cls.Config(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"method.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fields = ", ".join(sorted(cls.Config.model_fields))
        raise ConfigError(f"method ({cls.name})", f"{problems}. Options: {fields}") from None


def baseline_inputs(method: str, dataset: str) -> tuple[str, dict[str, Any]]:
    """``(data preset, data options)`` a same-input baseline reads next to ``method`` on
    ``dataset``: the method's own features, or (raw-window methods) the EEG DE and peripheral
    statistics of the same recordings on the same window grid."""
    import affectlab.methods  # noqa: F401  (registers the built-in methods)

    cls = METHODS.get(method)
    if cls.baseline_inputs is None:
        return cls.data_preset_for(dataset), {}
    return cls.baseline_inputs["preset"], dict(cls.baseline_inputs.get("options", {}))


def create_method(name: str, config: dict[str, Any] | None = None, n_classes: int = 2,
                  seed: int = 0, device: str | torch.device = "cpu",
                  preset: str = "default") -> Method:
    """Look up ``name`` in the registry and build it with a validated configuration."""
    import affectlab.methods  # noqa: F401  (registers the built-in methods)

    cls = METHODS.get(name)
    return cls(build_config(cls, preset, config), n_classes=n_classes, seed=seed, device=device)
