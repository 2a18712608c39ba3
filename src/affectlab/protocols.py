"""Evaluation protocols built on scikit-learn splitters.

A protocol reads groups from a WindowSet's metadata table (subject, session, trial, stimulus)
and yields :class:`Fold` objects: train / validation / test indices, the indices a transductive
method may use *unlabelled* (the target domain), and the modalities each part may use. No
protocol touches the disk or parses file names.

Leak-free protocols never put windows of one trial in two parts of a fold; validation parts are
carved from the training trials (or subjects), never from the test part. Cross-subject protocols
(``loso``, ``subject_kfold``, and ``cross_modal`` / ``label_ratio`` on one of them) carve it from
whole training subjects by default (``val_by=subject``), the others from whole training trials.
``random_window`` is the papers' random 70/15/15 split of windows (or of 1 s stimulus clips) and
is marked **leaky**.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    LeaveOneGroupOut,
    ShuffleSplit,
    StratifiedGroupKFold,
)

from affectlab.errors import ConfigError, ProtocolError, config_error
from affectlab.registry import Registry

# The papers' fixed within-subject trial splits (M2S): first n trials of a session train.
FIXED_TRAIN_TRIALS = {"seed": 9, "seed_iv": 16, "seed_v": 10}

# Options every protocol takes. ``val_by``: the validation part is whole training trials
# ("trial") or whole training subjects ("subject"). Its default depends on the protocol
# (:meth:`Protocol.default_val_by`): "subject" for cross-subject protocols, whose test subjects
# are new (a model that learns who a subject is scores well on held-out trials of known subjects
# but not on new ones, so selecting on such trials is optimistic), "trial" for the others; the
# "trial" here is a placeholder replaced by that default.
COMMON_OPTIONS: dict[str, Any] = {"val_fraction": 0.2, "val_by": "trial", "seed": 0,
                                  "on_missing_class": "error"}


Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
Direction = Annotated[str, Field(pattern=r"^\w+->\w+$")]


class ProtocolOptions(BaseModel):
    """Every protocol option (``--set protocol.<option>=value``) with its type and range. A
    protocol's ``options`` (and :data:`COMMON_OPTIONS`) say which it takes and their defaults;
    the defaults here are placeholders, never used."""

    model_config = ConfigDict(extra="forbid")
    val_fraction: Fraction = Field(0.2, description="share of the training trials (or subjects) "
                                   "held out for validation")
    val_by: Literal["trial", "subject"] = Field("trial", description="the validation part "
                                                "is whole training trials or subjects (default: "
                                                "subject under cross-subject protocols, else "
                                                "trial)")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the splits (default: the run's)")
    on_missing_class: Literal["error", "skip", "train"] = "error"
    split: Literal["kfold", "fixed"] = "kfold"
    n_splits: int = Field(5, ge=2)
    train_trials: int | None = Field(None, ge=1)
    per_session: bool = True
    per_subject: bool = False
    base: str = "subject_dependent"
    modalities: list[str] | None = Field(None, min_length=2, max_length=2)
    directions: Literal["all"] | list[Direction] = Field("all", min_length=1)
    ratio: float = Field(0.2, gt=0, le=1, allow_inf_nan=False)
    test_size: float = Field(0.15, gt=0, lt=1, allow_inf_nan=False)
    val_size: Fraction = 0.15
    n_repeats: int = Field(5, ge=1)
    unit: Literal["window", "clip"] = "window"

    @field_validator("base")
    @classmethod
    def _plain_split(cls, name: str) -> str:
        plain = [n for n, protocol in PROTOCOLS.items() if "base" not in protocol.options]
        if name not in plain:
            raise ValueError(f"allowed: {', '.join(plain)}")
        return name

    @field_validator("val_size")
    @classmethod
    def _held_out_below_one(cls, val_size: float, info: ValidationInfo) -> float:
        test_size = info.data.get("test_size")
        if test_size is not None and test_size + val_size >= 1:
            raise ValueError(f"test_size + val_size must be below 1, got {test_size} + "
                             f"{val_size}")
        return val_size


def validate_protocol_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against :class:`ProtocolOptions` and returned with their validated
    values; errors name ``protocol.<option>``, the value and what is allowed."""
    try:
        checked = ProtocolOptions.model_validate(options)
    except ValidationError as exc:
        raise config_error(exc.errors(), "protocol", ProtocolOptions) from None
    return checked.model_dump(include=set(options))


@dataclass
class Fold:
    """One fold: index arrays into the WindowSet (positions), plus what each part may use."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    unlabeled: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    train_modalities: tuple[str, ...] | None = None
    test_modalities: tuple[str, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _window_table(windows: Any) -> pd.DataFrame:
    """``meta`` of a WindowSet, or the DataFrame given, which must name subject, session and
    trial of each window."""
    meta = getattr(windows, "meta", windows)
    if not isinstance(meta, pd.DataFrame) or not {"subject", "session", "trial"} <= set(meta):
        raise ProtocolError("the window table must be a WindowSet or its meta DataFrame "
                            f"(subject, session, trial per window), got {type(meta).__name__}")
    return meta.reset_index(drop=True)


def trial_keys(meta: pd.DataFrame) -> np.ndarray:
    """One integer id per (subject, session, trial)."""
    return meta.groupby(["subject", "session", "trial"], sort=True).ngroup().to_numpy()


class Protocol:
    """Base class: subclasses implement :meth:`_folds` and declare ``options``."""

    name: ClassVar[str] = ""
    leaky: ClassVar[bool] = False
    #: test subjects never appear in training (the validation part defaults to whole subjects)
    cross_subject: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    #: the window table :meth:`bind` attached (``None``: unbound)
    meta: pd.DataFrame | None = None

    def __init__(self, dataset: str, **options: Any):
        unknown = set(options) - set(self.options) - set(COMMON_OPTIONS)
        if unknown:
            valid = sorted({*self.options, *COMMON_OPTIONS})
            raise ConfigError(f"protocol.{sorted(unknown)[0]}",
                              f"unknown option for {self.name}; valid: {', '.join(valid)}")
        self.dataset = dataset
        self.opts = validate_protocol_options({**COMMON_OPTIONS, **self.options, **options})
        if "val_by" not in options:
            self.opts["val_by"] = self.default_val_by()
        self.check()

    def is_cross_subject(self) -> bool:
        """Whether the test subjects of every fold are absent from its training part: this
        protocol's own property, or its base split's (``cross_modal`` / ``label_ratio``)."""
        if "base" in self.opts:
            return PROTOCOLS.get(self.opts["base"]).cross_subject
        return self.cross_subject

    def default_val_by(self) -> str:
        """``subject`` for a cross-subject protocol, ``trial`` for the others."""
        return "subject" if self.is_cross_subject() else "trial"

    def check(self) -> None:
        """Checks of the options that need no data (run when the protocol is created); the
        base split of a composite protocol is created, so its own options are checked too."""
        if "base" in self.opts:
            self._base_protocol()

    # ---------------------------------------------------------------- scikit-learn splitter
    def bind(self, windows: Any) -> Protocol:
        """A copy of this protocol bound to a window table (a WindowSet or its ``meta``): a
        scikit-learn CV splitter, ``cross_val_score(clf, X, y, cv=protocol.bind(ws))``, whose
        ``X`` rows are the table's windows in order."""
        bound = copy.copy(self)
        bound.meta = _window_table(windows)
        return bound

    def split(self, X: Any, y: Any = None,
              groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """scikit-learn's ``split``: ``(train, test)`` positions per fold. ``train`` is the
        fold's training part with its validation part (a CV estimator has no use for a
        separate one); folds that differ only in modalities (cross_modal's directions) give
        one split. The window table is ``groups`` (a DataFrame or WindowSet), the bound one
        (:meth:`bind`), or ``X`` itself when it is the table."""
        meta = self._table_for(X, groups)
        seen: set[tuple[bytes, bytes]] = set()
        for fold in self.folds(meta, None if y is None else np.asarray(y)):
            train = np.sort(np.r_[fold.train, fold.val]).astype(np.int64)
            key = (train.tobytes(), fold.test.tobytes())
            if key not in seen:
                seen.add(key)
                yield train, fold.test

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """scikit-learn's ``get_n_splits``: how many splits :meth:`split` yields."""
        return sum(1 for _ in self.split(X, y, groups))

    def _table_for(self, X: Any, groups: Any) -> pd.DataFrame:
        """The window table a split runs on, checked to have one row per row of ``X``."""
        if groups is not None:
            meta = _window_table(groups)
        elif self.meta is not None:
            meta = self.meta
        elif isinstance(X, pd.DataFrame) and {"subject", "session", "trial"} <= set(X):
            meta = X
        else:
            raise ProtocolError(f"{self.name}: no window table to split; bind one "
                                "(protocol.bind(ws) or protocol.bind(ws.meta)) or pass "
                                "groups=ws.meta")
        if X is not None and len(X) != len(meta):
            raise ProtocolError(f"{self.name}: X has {len(X)} rows, the window table "
                                f"{len(meta)}; give one row per window, in the table's order")
        return meta

    def folds(self, meta: pd.DataFrame, y: np.ndarray | None = None) -> list[Fold]:
        """All folds, with validation parts carved out and empty parts rejected."""
        y = np.zeros(len(meta), np.int64) if y is None else np.asarray(y)
        folds = list(self._folds(meta.reset_index(drop=True), y))
        if not folds:
            raise ProtocolError(f"{self.name}: no folds for this data")
        subjects = meta["subject"].to_numpy()
        for fold in folds:
            if len(fold.train) == 0 or len(fold.test) == 0:
                raise ProtocolError(f"{self.name}: fold {fold.name} has an empty "
                                    f"{'train' if len(fold.train) == 0 else 'test'} part")
            if self.opts.get("val_by") == "subject" and len(fold.val):
                fold.info = {**fold.info, "val_subjects": sorted(
                    int(s) for s in np.unique(subjects[fold.val]))}
        return folds

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        raise NotImplementedError

    # helpers
    def _base_protocol(self) -> Protocol:
        """The protocol named by option ``base``, given the options it understands."""
        cls = PROTOCOLS.get(self.opts["base"])
        shared = {k: v for k, v in self.opts.items()
                  if k in cls.options or k in ("val_fraction", "val_by", "seed")}
        return cls(self.dataset, **shared)

    def _carve_validation(self, meta: pd.DataFrame, y: np.ndarray, train: np.ndarray,
                          fold: str) -> tuple[np.ndarray, np.ndarray]:
        """Split ``train`` into (train, val) by whole trials or subjects (option ``val_by``):
        ``ceil(val_fraction x n)`` of the ``n`` training trials (subjects) at random, at least
        one, and at least one left to train on (trials: scikit-learn's GroupShuffleSplit with
        seed ``protocol.seed``; subjects: numpy's ``default_rng`` seeded with ``protocol.seed``
        and the fold's name). Under ``val_by=subject`` fewer than two training subjects is an
        error (no honest validation part exists); under ``val_by=trial`` a single training
        trial leaves no validation part."""
        fraction, by = float(self.opts["val_fraction"]), self.opts["val_by"]
        if fraction <= 0 or len(train) == 0:
            return train, np.empty(0, np.int64)
        groups = (meta["subject"].to_numpy() if by == "subject" else trial_keys(meta))[train]
        n_groups = len(np.unique(groups))
        if by == "subject" and n_groups < 2:
            default = " (the default under cross-subject protocols)" \
                if by == self.default_val_by() else ""
            raise ProtocolError(f"{self.name}: fold {fold} has {n_groups} training subject; "
                                f"val_by=subject{default} needs at least 2 (one to validate "
                                "on, one to train on): set protocol.val_by=trial or "
                                "protocol.val_fraction=0")
        if n_groups < 2:
            return train, np.empty(0, np.int64)
        if np.ceil(fraction * n_groups) >= n_groups:
            raise ProtocolError(f"{self.name}: protocol.val_fraction={fraction} leaves no "
                                f"training {by} in fold {fold} ({n_groups} {by}s to split)")
        if by == "subject":
            # drawn per fold from (seed, fold name): GroupShuffleSplit's draw repeats across
            # small seeds (seeds 0, 1 and 2 pick the same position of 5 subjects) and folds
            rng = np.random.default_rng([int(self.opts["seed"]), zlib.crc32(fold.encode())])
            chosen = rng.choice(np.unique(groups), int(np.ceil(fraction * n_groups)),
                                replace=False)
            is_val = np.isin(groups, chosen)
            return np.sort(train[~is_val]), np.sort(train[is_val])
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction,
                                     random_state=int(self.opts["seed"]))
        keep, val = next(splitter.split(train, y[train], groups))
        return np.sort(train[keep]), np.sort(train[val])

    def _fold(self, name: str, meta: pd.DataFrame, y: np.ndarray, train: np.ndarray,
              test: np.ndarray, **info: Any) -> Fold:
        train, val = self._carve_validation(meta, y, np.sort(train), name)
        test = np.sort(test)
        return Fold(name, train, val, test, unlabeled=test.copy(), info=info)


PROTOCOLS: Registry[type[Protocol]] = Registry("protocol")


def _register(cls: type[Protocol]) -> type[Protocol]:
    PROTOCOLS.add(cls.name, cls)
    return cls


@_register
class SubjectDependent(Protocol):
    name = "subject_dependent"
    summary = "inside each subject (and session): trial-wise k-fold, or the papers' fixed " \
              "first-n-trials split (SEED 9:6, SEED-IV 16:8, SEED-V 10:5)"
    options = {"split": "kfold", "n_splits": 5, "train_trials": None, "per_session": True}

    def check(self) -> None:
        if self.opts["split"] == "fixed" and not (self.opts["train_trials"]
                                                   or FIXED_TRAIN_TRIALS.get(self.dataset)):
            raise ConfigError("protocol.train_trials", f"no fixed trial split is known for "
                              f"{self.dataset}; give protocol.train_trials=N")

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        keys = ["subject", "session"] if self.opts["per_session"] else ["subject"]
        for key, rows in meta.groupby(keys, sort=True).indices.items():
            key = key if isinstance(key, tuple) else (key,)
            label = "_".join(f"{k[:4]}{v}" for k, v in zip(keys, key, strict=True))
            yield from self._within(meta, y, np.asarray(rows), label, dict(zip(keys, key,
                                                                                strict=True)))

    def _within(self, meta, y, rows, label, info) -> Iterator[Fold]:
        trials = trial_keys(meta)[rows]
        if self.opts["split"] == "fixed":
            n_train = self.opts["train_trials"] or FIXED_TRAIN_TRIALS.get(self.dataset)
            if n_train is None:
                raise ConfigError("protocol.train_trials", f"no fixed trial split is known for "
                                  f"{self.dataset}; give protocol.train_trials=N")
            order = np.unique(meta["trial"].to_numpy()[rows])
            is_train = np.isin(meta["trial"].to_numpy()[rows], order[:n_train])
            yield self._fold(f"{label}", meta, y, rows[is_train], rows[~is_train], **info)
            return
        if self.opts["split"] != "kfold":
            raise ConfigError("protocol.split", f"got {self.opts['split']!r}; allowed: kfold, "
                                                "fixed")
        n_splits = int(self.opts["n_splits"])
        if len(np.unique(trials)) < n_splits:
            raise ProtocolError(f"subject_dependent: {label} has {len(np.unique(trials))} "
                                f"trials, fewer than protocol.n_splits={n_splits}")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                                        random_state=int(self.opts["seed"]))
        for k, (tr, te) in enumerate(splitter.split(rows, y[rows], trials)):
            yield self._fold(f"{label}_f{k}", meta, y, rows[tr], rows[te], **info)


@_register
class LeaveOneSubjectOut(Protocol):
    name = "loso"
    cross_subject = True
    summary = "leave one subject out (LeaveOneGroupOut over subjects); per session optionally"
    options = {"per_session": False}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        blocks = meta.groupby("session").indices.items() if self.opts["per_session"] else \
            [(None, np.arange(len(meta)))]
        for session, rows in blocks:
            rows = np.asarray(rows)
            subjects = meta["subject"].to_numpy()[rows]
            if len(np.unique(subjects)) < 2:
                raise ProtocolError(f"loso needs at least 2 subjects, found "
                                    f"{len(np.unique(subjects))}")
            for tr, te in LeaveOneGroupOut().split(rows, groups=subjects):
                subject = int(subjects[te[0]])
                prefix = f"sess{session}_" if session is not None else ""
                yield self._fold(f"{prefix}subj{subject}", meta, y, rows[tr], rows[te],
                                 subject=subject, **({"session": int(session)} if session
                                                     is not None else {}))


@_register
class SubjectKFold(Protocol):
    name = "subject_kfold"
    cross_subject = True
    summary = "k-fold over subjects (GroupKFold): test subjects never seen in training"
    options = {"n_splits": 5}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        subjects = meta["subject"].to_numpy()
        n_splits = min(int(self.opts["n_splits"]), len(np.unique(subjects)))
        if n_splits < 2:
            raise ProtocolError("subject_kfold needs at least 2 subjects")
        for k, (tr, te) in enumerate(GroupKFold(n_splits=n_splits).split(meta, groups=subjects)):
            yield self._fold(f"fold{k}", meta, y, tr, te, test_subjects=sorted(
                int(s) for s in np.unique(subjects[te])))


@_register
class CrossSession(Protocol):
    name = "cross_session"
    summary = "leave one session out (pooled subjects, or inside each subject)"
    options = {"per_subject": False}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        sessions = meta["session"].to_numpy()
        if len(np.unique(sessions)) < 2:
            raise ProtocolError(f"cross_session needs at least 2 sessions; {self.dataset} has "
                                f"{len(np.unique(sessions))}")
        blocks = meta.groupby("subject").indices.items() if self.opts["per_subject"] else \
            [(None, np.arange(len(meta)))]
        for subject, rows in blocks:
            rows = np.asarray(rows)
            for tr, te in LeaveOneGroupOut().split(rows, groups=sessions[rows]):
                session = int(sessions[rows][te[0]])
                prefix = f"subj{subject}_" if subject is not None else ""
                yield self._fold(f"{prefix}sess{session}", meta, y, rows[tr], rows[te],
                                 session=session)


@_register
class StimulusKFold(Protocol):
    name = "stimulus_kfold"
    summary = "k-fold over whole stimuli (videos): a video's windows of every subject on one side"
    options = {"n_splits": 5}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        stimuli = meta["stimulus"].to_numpy()
        n_splits, n_stimuli = int(self.opts["n_splits"]), len(np.unique(stimuli))
        if n_stimuli < n_splits:
            raise ProtocolError(f"stimulus_kfold: {n_stimuli} stimuli, fewer than "
                                f"protocol.n_splits={n_splits}")
        for k, (tr, te) in enumerate(GroupKFold(n_splits=int(self.opts["n_splits"])).split(
                meta, groups=stimuli)):
            yield self._fold(f"fold{k}", meta, y, tr, te)


@_register
class CrossModal(Protocol):
    name = "cross_modal"
    summary = "train on modality A, test on modality B (all four directions by default) on a " \
              "leak-free base split"
    options = {"base": "subject_dependent", "modalities": None, "directions": "all",
               "split": "fixed", "n_splits": 5, "train_trials": None, "per_session": True}

    def check(self) -> None:
        if not self.opts["modalities"]:
            raise ConfigError("protocol.modalities", "cross_modal needs two modalities, e.g. "
                                                     "--set protocol.modalities=[eeg,eye]")
        super().check()

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        pair = self.opts["modalities"]
        if not pair or len(pair) != 2:
            raise ConfigError("protocol.modalities", "cross_modal needs two modalities, e.g. "
                                                     "--set protocol.modalities=[eeg,eye]")
        a, b = pair
        directions = [(a, a), (a, b), (b, a), (b, b)] if self.opts["directions"] == "all" \
            else [tuple(d.split("->")) for d in self.opts["directions"]]
        base = self._base_protocol()
        for fold in base._folds(meta, y):
            for src, dst in directions:
                yield Fold(f"{fold.name}_{src}2{dst}", fold.train, fold.val, fold.test,
                           fold.unlabeled, (src,), (dst,), {**fold.info, "direction":
                                                            f"{src}->{dst}"})


@_register
class LabelRatio(Protocol):
    name = "label_ratio"
    summary = "a leak-free base split whose training pool (training + validation trials) keeps " \
              "labels for a fraction of its trials; validation is carved from those; the rest " \
              "is unlabelled training data"
    options = {"base": "subject_dependent", "ratio": 0.2, "split": "kfold", "n_splits": 5,
               "per_session": True}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        """Per base fold: ``floor(ratio * n)`` of the ``n`` trials of the training pool (the
        base fold's training and validation parts) keep their labels (at least one); the
        validation part is carved from these labelled trials, so training and validation
        labels together stay within the budget; the other pool trials become unlabelled."""
        ratio = float(self.opts["ratio"])
        if not 0 < ratio <= 1:
            raise ConfigError("protocol.ratio", f"{ratio} not in (0, 1]")
        base = self._base_protocol()
        rng = np.random.default_rng(int(self.opts["seed"]))
        trials = trial_keys(meta)
        for fold in base._folds(meta, y):
            pool = np.sort(np.r_[fold.train, fold.val])
            kept = self._keep(trials[pool], ratio, rng)
            fold.train, fold.val = self._carve_validation(meta, y, pool[kept], fold.name)
            fold.unlabeled = np.sort(np.r_[pool[~kept], fold.test])
            fold.info = {**fold.info, "label_ratio": ratio,
                         "labelled_trials": len(np.unique(trials[pool[kept]])),
                         "pool_trials": len(np.unique(trials[pool]))}
            yield fold

    @staticmethod
    def label_budget(n_trials: int, ratio: float) -> int:
        """Labelled trials out of a pool of ``n_trials``: ``floor(ratio * n)``, at least 1."""
        return max(1, int(np.floor(ratio * n_trials + 1e-9)))

    @classmethod
    def _keep(cls, trials: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
        unique = np.unique(trials)
        chosen = rng.choice(unique, size=cls.label_budget(len(unique), ratio), replace=False)
        return np.isin(trials, chosen)


@_register
class RandomWindow(Protocol):
    name = "random_window"
    leaky = True
    summary = "LEAKY: the papers' random 70/15/15 split of windows (or of 1 s stimulus clips " \
              "shared by all subjects); windows of one trial land on both sides"
    options = {"test_size": 0.15, "val_size": 0.15, "n_repeats": 5, "unit": "window"}

    def _folds(self, meta: pd.DataFrame, y: np.ndarray) -> Iterator[Fold]:
        unit = self.opts["unit"]
        if unit == "window":
            groups = np.arange(len(meta))
        elif unit == "clip":
            groups = meta.groupby(["stimulus", "window"]).ngroup().to_numpy()
        else:
            raise ConfigError("protocol.unit", f"got {unit!r}; allowed: window, clip")
        unique = np.unique(groups)
        test_size, val_size = float(self.opts["test_size"]), float(self.opts["val_size"])
        for k in range(int(self.opts["n_repeats"])):
            splitter = ShuffleSplit(n_splits=1, test_size=test_size + val_size,
                                    random_state=int(self.opts["seed"]) + k)
            keep, held = next(splitter.split(unique))
            held = unique[held]
            rng = np.random.default_rng(int(self.opts["seed"]) + k)
            rng.shuffle(held)
            n_val = int(round(len(held) * val_size / (test_size + val_size)))
            val_groups, test_groups = held[:n_val], held[n_val:]
            yield Fold(f"repeat{k}", np.flatnonzero(np.isin(groups, unique[keep])),
                       np.flatnonzero(np.isin(groups, val_groups)),
                       np.flatnonzero(np.isin(groups, test_groups)),
                       np.flatnonzero(np.isin(groups, test_groups)), info={"leaky": True})


def create_protocol(name: str, dataset: str, **options: Any) -> Protocol:
    """Build a protocol by name; an unknown name lists the valid ones."""
    return PROTOCOLS.get(name)(dataset, **options)


def check_classes(folds: list[Fold], y: np.ndarray, n_classes: int, policy: str) -> list[Fold]:
    """Deal with folds whose training part lacks a class: ``error`` (default) or ``skip``.

    ``train`` keeps such folds (a method then simply never predicts that class).
    """
    bad = []
    for fold in folds:
        present = set(np.unique(y[fold.train]).tolist())
        missing = sorted(set(range(n_classes)) - present)
        if missing:
            bad.append((fold, missing))
    if not bad or policy == "train":
        return folds
    if policy == "skip":
        skipped = {id(f) for f, _ in bad}
        return [f for f in folds if id(f) not in skipped]
    if policy != "error":
        raise ConfigError("protocol.on_missing_class", f"got {policy!r}; allowed: error, skip, "
                                                       "train")
    listing = "; ".join(f"{f.name}: class {m}" for f, m in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    raise ProtocolError(f"{len(bad)} fold(s) lack a class in their training part: "
                        f"{listing}{more}. Choose another label scheme or protocol, or set "
                        "protocol.on_missing_class=skip (drop those folds) or =train "
                        "(train anyway)")


def leak_check(meta: pd.DataFrame, fold: Fold) -> list[str]:
    """Names of part pairs that share a trial (empty for a leak-free fold)."""
    trials = trial_keys(meta)
    parts = {name: set(trials[idx].tolist()) for name, idx in fold.parts().items()}
    names = list(parts)
    return [f"{a}/{b}" for i, a in enumerate(names) for b in names[i + 1:]
            if parts[a] & parts[b]]
