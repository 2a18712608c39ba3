"""The runner: config -> data -> labels -> folds -> fit / predict -> metrics -> run directory.

A run directory ``runs/<name>/`` holds ``config.yaml`` (the resolved configuration),
``folds/<k>/metrics.json`` and ``folds/<k>/predictions.csv`` (each written atomically; a fold
with a ``metrics.json`` is finished and is never redone), ``summary.json``, ``summary.md``,
``report.html`` (:mod:`affectlab.html_report`) and ``run.log``. Re-running the same command
into the same directory resumes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import affectlab
from affectlab import evaluation
from affectlab.config import (  # noqa: F401  (re-exported: affectlab.run's API)
    OPTION_GROUPS,
    apply_overrides,
    parse_override,
    read_config_file,
)
from affectlab.data import WindowSet, usable_windows
from affectlab.errors import AffectlabError, ConfigError, config_error
from affectlab.labels import Labels, default_scheme, make_labels
from affectlab.methods import Method, Predictions, Split, build_config
from affectlab.plugins import method_label, resolve_method
from affectlab.protocols import PROTOCOLS, Fold, check_classes, create_protocol
from affectlab.training import NUMERICS, numerics, pick_device

log = logging.getLogger("affectlab.run")
data_log = logging.getLogger("affectlab.data")   # no handler: warnings reach stderr
DEVICES = "auto, cpu, cuda, cuda:N, mps"
LOCK_FILE = ".lock"


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheme: str | None = Field(None, description="label scheme (default: native for the SEED "
                               "family, binary_valence for rating datasets)")
    threshold: float | None = Field(None, allow_inf_nan=False)
    inclusive: bool | None = Field(None, description="a rating equal to the threshold is high "
                                   "(>=) instead of low (>); default: the method's reading "
                                   "(e.g. SGMC's >= under me_mhacl official=true), else false")


class ResourceConfig(BaseModel):
    """What one fold asks a cluster for (``--executor ray``); fractional GPUs are allowed."""

    model_config = ConfigDict(extra="forbid")
    cpus_per_task: float = Field(1, gt=0)
    gpus_per_task: float | None = Field(None, ge=0, description="default: 1 when device is "
                                        "auto and the Ray cluster has GPUs, else 0")


class TrackingConfig(BaseModel):
    """Where ``track`` logs the finished run (:mod:`affectlab.tracking`)."""

    model_config = ConfigDict(extra="forbid")
    uri: str | None = Field(None, description="tracking URI (default: MLFLOW_TRACKING_URI, "
                            "else the file store ./mlruns)")
    experiment: str | None = Field(None, description="experiment name (default: "
                                   "<dataset>-<protocol>-<label scheme>)")


class RunConfig(BaseModel):
    """Everything a run needs; ``options`` holds per-group overrides (method / protocol / data)."""

    model_config = ConfigDict(extra="forbid")
    method: str
    dataset: str
    root: str
    protocol: str = "subject_dependent"
    labels: LabelConfig = Field(default_factory=LabelConfig)
    preset: str | None = Field(None, description="data preset (default: the method's)")
    method_preset: str = Field("default", description="method hyper-parameters: default | "
                               "paper | fast (a smoke test)")
    modalities: list[str] | None = Field(None, min_length=1,
                                         description="modalities to use (default: all)")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the methods and (unless "
                      "protocol.seed is given) of the splits")
    device: str = Field("auto", description=f"one of {DEVICES}")
    threads: int = Field(1, ge=1, description="torch threads per worker process")
    amp: bool = Field(False, description="bf16 autocast around the method's fit and predict "
                      "(CPU and CUDA; changes the numbers slightly)")
    tf32: bool = Field(False, description="TensorFloat-32 float32 matmuls and convolutions "
                       "on CUDA (a no-op elsewhere)")
    deterministic: bool = Field(False, description="torch's deterministic algorithms for each "
                                "fold (an op without one fails the fold)")
    report_oracle: bool = False
    max_folds: int | None = Field(None, ge=1, description="run only the first N folds "
                                  "(smoke tests); the summary says so")
    cache_dir: str | None = None
    name: str | None = None
    resources: ResourceConfig = Field(default_factory=ResourceConfig)
    track: str | None = Field(None, description="log the finished run to an experiment "
                              "tracker: mlflow (the mlflow extra); never fails the run")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    options: dict[str, dict[str, Any]] = Field(default_factory=lambda: {
        g: {} for g in OPTION_GROUPS})

    @field_validator("device")
    @classmethod
    def _known_device(cls, name: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name):
            raise ValueError(f"allowed: {DEVICES}")
        return name

    @field_validator("track")
    @classmethod
    def _known_tracker(cls, name: str | None) -> str | None:
        from affectlab.tracking import TRACKERS

        if name is not None and name not in TRACKERS:
            raise ValueError(f"allowed: {', '.join(TRACKERS)}")
        return name


def load_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw config; errors name the option and list the valid fields."""
    try:
        cfg = RunConfig(**raw)
    except ValidationError as exc:
        raise config_error(exc.errors(), model=RunConfig) from None
    unknown = set(cfg.options) - set(OPTION_GROUPS)
    if unknown:
        raise ConfigError(f"options.{sorted(unknown)[0]}",
                          f"unknown group; valid: {', '.join(OPTION_GROUPS)}")
    for group in OPTION_GROUPS:
        cfg.options.setdefault(group, {})
    return cfg


# --------------------------------------------------------------------------- planning

@dataclass
class Plan:
    """A resolved run: the data, labels and folds, and what each fold needs."""

    cfg: RunConfig
    method_cls: type[Method]
    method_config: dict[str, Any]
    windows: WindowSet
    labels: Labels
    folds: list[Fold]
    preset: str
    cache_path: Path | None
    leaky: bool
    n_dropped: dict[str, int]
    losses: dict[str, Any]
    #: the protocol's resolved options (``val_by`` and every default filled in)
    protocol_options: dict[str, Any] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        cfg = self.cfg
        method = method_label(cfg.method, self.method_cls)
        return cfg.name or f"{method}-{cfg.dataset}-{cfg.protocol}-{cfg.labels.scheme}"


def check_device(name: str) -> None:
    """Refuse a device this machine does not have (``cuda`` without CUDA, ``cuda:N`` beyond its
    GPUs, ``mps`` without Metal), naming the option, the value and what is allowed here."""
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError("device", f"got '{name}', but CUDA is not available on this "
                                        "machine; allowed here: auto, cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError("device", f"got '{name}'; this machine has {count} CUDA "
                                        f"device(s): cuda:0 to cuda:{count - 1}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", "got 'mps', but MPS is not available on this machine; "
                                    "allowed here: auto, cpu")


def check_folder(option: str, path: str | Path) -> None:
    """Refuse a folder option that names a file, lies under a file, or cannot be written."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise ConfigError(option, f"got {str(path)!r}, which {where}; give a folder")
    if not os.access(existing, os.W_OK):
        raise ConfigError(option, f"got {str(path)!r}, but {existing} is not writable")


def method_options_checked(method_cls: type[Method], preset: str,
                           options: dict[str, Any]) -> dict[str, Any]:
    """The method's config (defaults <- preset <- options) as a dict; a bad option is named
    ``method.<option>`` with its value and what is allowed."""
    if preset in method_cls.presets:         # (an unknown preset: build_config lists the valid)
        try:
            method_cls.Config(**{**method_cls.presets[preset], **options})
        except ValidationError as exc:
            raise config_error(exc.errors(), "method", method_cls.Config) from None
    return build_config(method_cls, preset, options).model_dump()


def _check_labels(cfg: RunConfig) -> None:
    """The label scheme and threshold against the dataset, on a one-window stand-in (the same
    checks as on the data, before any file is read)."""
    from affectlab.datasets import get_spec

    low, high = get_spec(cfg.dataset).rating_scale or (1.0, 9.0)
    stand_in = pd.DataFrame({"native_label": [0], "valence": [(low + high) / 2],
                             "arousal": [(low + high) / 2]})
    make_labels(stand_in, cfg.dataset, cfg.labels.scheme, cfg.labels.threshold,
                bool(cfg.labels.inclusive))


def resolve_run(cfg: RunConfig) -> tuple[RunConfig, type[Method], dict[str, Any], str, Any]:
    """Names and options resolved and checked before any data is read: the config (label
    scheme, method preset and label options resolved), the method class and config, the data
    preset and the protocol."""
    from affectlab.datasets import get_spec
    from affectlab.presets import check_data_options

    method_cls = resolve_method(cfg.method)    # a name, an import path or an entry point
    get_spec(cfg.dataset)                      # an unknown name lists the valid ones
    if cfg.cache_dir is not None:
        check_folder("cache_dir", cfg.cache_dir)
    if cfg.track is not None:
        _check_tracking(cfg)
    if cfg.labels.scheme is None:
        labels_cfg = cfg.labels.model_copy(update={"scheme": default_scheme(cfg.dataset)})
        cfg = cfg.model_copy(update={"labels": labels_cfg})
    PROTOCOLS.get(cfg.protocol)                    # an unknown name lists the valid ones
    if method_cls.protocols is not None and cfg.protocol not in method_cls.protocols:
        raise ConfigError("protocol", f"{cfg.method} supports {', '.join(method_cls.protocols)}; "
                                      f"got {cfg.protocol}")
    method_options = dict(cfg.options["method"])
    if cfg.report_oracle and "report_oracle" in method_cls.Config.model_fields:
        method_options["report_oracle"] = True
    method_preset = method_cls.method_preset_for(cfg.method_preset, cfg.dataset)
    if method_preset != cfg.method_preset:
        log.info("%s: method preset '%s' on %s is '%s'", cfg.method, cfg.method_preset,
                 cfg.dataset, method_preset)
        cfg = cfg.model_copy(update={"method_preset": method_preset})
    method_config = method_options_checked(method_cls, cfg.method_preset, method_options)
    cfg = _resolve_label_options(cfg, method_cls, method_config)
    _check_labels(cfg)
    preset = cfg.preset or method_cls.data_preset_for(cfg.dataset)
    data_options = check_data_options(cfg.dataset, preset, cfg.options["data"])
    protocol = create_protocol(cfg.protocol, cfg.dataset,
                               **{"seed": cfg.seed, **cfg.options["protocol"]})
    _check_modality_names(cfg, preset, data_options, protocol.opts.get("modalities"))
    return cfg, method_cls, method_config, preset, protocol


def _check_tracking(cfg: RunConfig) -> None:
    """The tracker is installed and a file store's folder can be written."""
    from affectlab.tracking import check_tracking, file_store, tracking_uri

    check_tracking(cfg.track)
    store = file_store(tracking_uri(cfg.tracking.uri))
    if store is not None:
        check_folder("tracking.uri", store)


def _check_modality_names(cfg: RunConfig, preset: str, data_options: dict[str, Any],
                          protocol_modalities: list[str] | None) -> None:
    """``modalities`` and ``protocol.modalities`` among the modalities the data preset makes
    (a modality no recording holds is still found missing on the data)."""
    from affectlab.presets import get_preset

    planned = list(get_preset(preset).plan(cfg.dataset, data_options))
    for option, names in (("modalities", cfg.modalities), ("protocol.modalities",
                                                             protocol_modalities)):
        unknown = [name for name in names or [] if name not in planned]
        if unknown:
            raise ConfigError(option, f"got {unknown[0]!r}; allowed: {', '.join(planned)} (the "
                                      f"modalities of preset {preset} on {cfg.dataset})")


def plan_run(cfg: RunConfig, progress: bool = False, windows: WindowSet | None = None) -> Plan:
    """Resolve names, prepare data, make labels and folds; every check happens here, before
    any training, and every option is checked before any data is read (:func:`resolve_run`).
    ``windows``: an already prepared WindowSet (a plan's own, shipped to a worker) used instead
    of the dataset cache."""
    from affectlab.presets import prepare

    cfg, method_cls, method_config, preset, protocol = resolve_run(cfg)
    cache_path = None
    if windows is None:
        windows, cache_path = prepare(cfg.dataset, cfg.root, preset, cfg.options["data"],
                                      cache_dir=cfg.cache_dir, progress=progress)
    if cfg.modalities:
        windows = windows.select_modalities(cfg.modalities)
    labels = make_labels(windows.meta, cfg.dataset, cfg.labels.scheme, cfg.labels.threshold,
                         bool(cfg.labels.inclusive))
    used = method_cls.used_modalities(method_config, windows.names)
    keep, dropped = _usable(windows, labels, used)
    losses = data_losses(windows, keep, dropped, used)
    if losses["subjects"] or losses["windows"]:
        data_log.warning("%s", losses_line(losses))
    windows = windows.subset(keep)
    y = labels.y[keep]
    labels = Labels(y, labels.classes, labels.scheme)
    folds = protocol.folds(windows.meta, y)
    folds = check_classes(folds, y, labels.n_classes, protocol.opts["on_missing_class"])
    if cfg.max_folds is not None:
        folds = folds[: cfg.max_folds]
    for fold in folds:
        fold.train_modalities = fold.train_modalities or tuple(windows.names)
        fold.test_modalities = fold.test_modalities or tuple(windows.names)
        for name in (*fold.train_modalities, *fold.test_modalities):
            if name not in windows.names:
                raise ConfigError("protocol.modalities", f"'{name}' is not in the data; "
                                  f"available: {', '.join(windows.names)}")
    return Plan(cfg, method_cls, method_config, windows, labels, folds, preset, cache_path,
                protocol.leaky, dropped, losses, dict(protocol.opts))


def _resolve_label_options(cfg: RunConfig, method_cls: type[Method],
                           method_config: dict[str, Any]) -> RunConfig:
    """Label options the user left unset take the method's reading under its config (written
    to config.yaml, so the resolved run states them)."""
    defaults = method_cls.label_options(method_config)
    update = {k: v for k, v in defaults.items() if getattr(cfg.labels, k) is None}
    return cfg.model_copy(update={"labels": cfg.labels.model_copy(update=update)})


def _usable(windows: WindowSet, labels: Labels,
            used: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """:func:`~affectlab.data.usable_windows` (a defined label and every modality the method
    uses); no usable window at all is an error."""
    keep, dropped = usable_windows(windows, labels, used)
    if not len(keep):
        raise AffectlabError(f"no usable windows: every window lacks a label or one of the "
                             f"modalities the method uses ({', '.join(used)}): {dropped}")
    return keep, dropped


def data_losses(windows: WindowSet, keep: np.ndarray, dropped: dict[str, int],
                used: list[str]) -> dict[str, Any]:
    """What the runner dropped, and why: windows per reason, whole trials and subjects lost,
    windows lost per subject that keeps some; plus what the data preset already counted."""
    meta = windows.meta
    kept = np.zeros(len(meta), bool)
    kept[keep] = True
    trial_cols = ["subject", "session", "trial"]
    per_trial = pd.Series(kept).groupby([meta[c].to_numpy() for c in trial_cols]).any()
    per_subject = pd.Series(kept).groupby(meta["subject"].to_numpy())
    lost_subjects = sorted(int(s) for s, any_kept in per_subject.any().items() if not any_kept)
    partial = {int(s): int(n - k) for (s, n), k in zip(per_subject.size().items(),
                                                         per_subject.sum(), strict=True)
               if 0 < k < n}
    return {"modalities_used": list(used), "windows_before": len(meta),
            "windows": int(len(meta) - len(keep)), "by_reason": dropped,
            "trials": int((~per_trial).sum()), "subjects": lost_subjects,
            "subjects_partial": partial,
            "preset_missing": windows.description.get("missing", {}),
            "trials_without_windows": windows.description.get("trials_without_windows", {}),
            "invalid_ratings": windows.description.get("invalid_ratings", {}),
            "flat_channels": windows.description.get("flat_channels", {}),
            "unlisted": windows.description.get("unlisted", {}),
            "absent_modalities": windows.description.get("absent_modalities", [])}


def losses_line(losses: dict[str, Any]) -> str:
    """One sentence for the console and summary.md."""
    reasons = ", ".join(f"{k.removeprefix('missing_')}: {v}" if k.startswith("missing_")
                        else f"{k}: {v}" for k, v in losses["by_reason"].items())
    text = (f"dropped {losses['windows']} of {losses['windows_before']} windows "
            f"({reasons or 'none'}); {losses['trials']} trial(s) entirely")
    if losses["subjects"]:
        text += (f"; {len(losses['subjects'])} subject(s) entirely: "
                 f"{', '.join(map(str, losses['subjects']))}")
    return text + f" (the method uses {', '.join(losses['modalities_used'])})"


# --------------------------------------------------------------------------- one fold

def fold_splits(plan: Plan, fold: Fold) -> tuple[Split, Split | None, Split | None, Split]:
    """The Split objects a method sees for a fold (labels only on train and val)."""
    ws, y = plan.windows, plan.labels.y
    train = Split(ws.subset(fold.train), y[fold.train], fold.train_modalities)
    val = Split(ws.subset(fold.val), y[fold.val], fold.train_modalities) if len(fold.val) \
        else None
    unlabeled_idx = fold.unlabeled
    if not plan.method_cls.transductive:
        unlabeled_idx = np.setdiff1d(unlabeled_idx, fold.test)
    unlabeled = Split(ws.subset(unlabeled_idx), None, tuple(ws.names)) if len(unlabeled_idx) \
        else None
    return train, unlabeled, val, prediction_split(plan, fold, fold.test)


def prediction_split(plan: Plan, fold: Fold, idx: np.ndarray) -> Split:
    """Windows ``idx`` as the method predicts them: test modalities only, no labels."""
    windows = plan.windows.subset(idx).select_modalities(fold.test_modalities)
    return Split(windows, None, fold.test_modalities)


def run_fold(plan: Plan, k: int, fold_dir: Path, on_epoch=None) -> dict:
    """Fit and predict one fold; write predictions and metrics atomically; return metrics."""
    cfg = plan.cfg
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    method = plan.method_cls(plan.method_cls.Config(**plan.method_config),
                             n_classes=plan.labels.n_classes, seed=cfg.seed + k, device=device)
    history: list[dict[str, float]] = []
    method.on_epoch = _epoch_recorder(history, on_epoch)
    train, unlabeled, val, test = fold_splits(plan, plan.folds[k])
    fold = plan.folds[k]
    with numerics(device, cfg.amp, cfg.tf32, cfg.deterministic):
        start = time.perf_counter()
        method.fit(train, unlabeled=unlabeled, val=val)
        predictions = method.predict(test)
        seconds = time.perf_counter() - start
        val_metrics = _val_metrics(plan, fold, method) if len(fold.val) else None
    if predictions.probs.shape != (len(test), plan.labels.n_classes):
        raise AffectlabError(f"{cfg.method} returned probs of shape {predictions.probs.shape}, "
                             f"expected {(len(test), plan.labels.n_classes)}")
    y_true = plan.labels.y[fold.test]
    metrics = evaluation.fold_metrics(y_true, predictions.probs, plan.labels.n_classes,
                                      predictions.uncertainty)
    metrics.update(fold=fold.name, index=k, info=fold.info, n_train=len(fold.train),
                   n_val=len(fold.val), n_unlabeled=len(unlabeled) if unlabeled else 0,
                   seconds=round(seconds, 3), extras=predictions.extras,
                   train_modalities=list(fold.train_modalities),
                   test_modalities=list(fold.test_modalities))
    if cfg.report_oracle and predictions.epoch_probs is not None:
        metrics["oracle_best_epoch"] = evaluation.oracle_best_epoch(predictions.epoch_probs,
                                                                    y_true)
    if val_metrics is not None:
        metrics["val_metrics"] = val_metrics
    if history:
        fold_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(fold_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
    if predictions.embeddings is not None:
        fold_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_array(fold_dir / "embeddings.npy", predictions.embeddings)
    write_fold(fold_dir, _prediction_table(plan, k, y_true, predictions), metrics)
    return metrics


def _epoch_recorder(history: list[dict[str, float]],
                    on_epoch: Callable[[int, int, dict], None] | None,
                    ) -> Callable[[int, int, dict], None]:
    """An ``on_epoch`` hook that appends each reported epoch (1-based ``epoch``, ``n_epochs``
    and every logged value) to ``history``, then calls ``on_epoch``."""
    def record(epoch: int, n_epochs: int, logs: dict) -> None:
        history.append({"epoch": epoch + 1, "n_epochs": n_epochs, **logs})
        if on_epoch is not None:
            on_epoch(epoch, n_epochs, logs)

    return record


def _val_metrics(plan: Plan, fold: Fold, method: Method) -> dict:
    """The fitted method's scores on the fold's validation part, predicted as the test part is
    (after the test predictions, so they cannot change them); what sweeps rank by."""
    predictions = method.predict(prediction_split(plan, fold, fold.val))
    return evaluation.fold_metrics(plan.labels.y[fold.val], predictions.probs,
                                   plan.labels.n_classes, predictions.uncertainty)


def _prediction_table(plan: Plan, k: int, y_true: np.ndarray,
                      predictions: Predictions) -> pd.DataFrame:
    fold = plan.folds[k]
    meta = plan.windows.meta.iloc[fold.test]
    table = pd.DataFrame({"fold": fold.name, "fold_index": k, "index": fold.test,
                          "subject": meta["subject"].to_numpy(),
                          "session": meta["session"].to_numpy(),
                          "trial": meta["trial"].to_numpy(),
                          "window": meta["window"].to_numpy(), "y_true": y_true,
                          "y_pred": predictions.labels})
    for c in range(predictions.probs.shape[1]):
        table[f"prob_{c}"] = predictions.probs[:, c]
    if predictions.uncertainty is not None:
        table["uncertainty"] = np.asarray(predictions.uncertainty, dtype=float)
    return table


@contextmanager
def _replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed onto ``path`` once written."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    yield tmp
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    with _replacing(path) as tmp:
        tmp.write_text(text)


def atomic_save_array(path: Path, values: np.ndarray) -> None:
    """``values`` as float32 ``.npy`` (rows in the order of the fold's predictions.csv)."""
    with _replacing(path, ".npy") as tmp:       # np.save appends .npy to other names
        np.save(tmp, np.asarray(values, dtype=np.float32))


def write_fold(fold_dir: Path, table: pd.DataFrame, metrics: dict) -> None:
    """predictions.csv first, metrics.json last: a fold with metrics.json is complete."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(fold_dir / "predictions.csv", table.to_csv(index=False))
    atomic_write_text(fold_dir / "metrics.json", json.dumps(metrics, indent=1, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --------------------------------------------------------------------------- the whole run

def resolved_config(plan: Plan) -> dict[str, Any]:
    """The configuration as it will be run (written to config.yaml and summary.json)."""
    raw = plan.cfg.model_dump()
    raw["preset"] = plan.preset
    raw["options"]["method"] = plan.method_config
    raw["options"]["data"] = plan.windows.description.get("options", {})
    if "val_by" in plan.protocol_options:      # its default depends on the protocol: stated
        raw["options"]["protocol"] = {**raw["options"]["protocol"],
                                      "val_by": plan.protocol_options["val_by"]}
    return json.loads(json.dumps(raw, default=_jsonable))


def run_dir_for(plan: Plan, out: str | Path | None) -> Path:
    """``out``, or ``runs/<run name>``."""
    return Path(out) if out else Path("runs") / plan.run_name


_LOCKED: set[Path] = set()       # run directories this process holds the lock of


@contextmanager
def locked_run_dir(run_dir: str | Path) -> Iterator[Path]:
    """Create ``run_dir`` and hold an exclusive OS lock (``flock`` on its ``.lock`` file) while
    the block runs: a second run into the same folder, in any process, is refused with a
    :class:`ConfigError` naming it. Re-entrant within one process."""
    run_dir = Path(run_dir)
    if run_dir.resolve() in _LOCKED:
        yield run_dir
        return
    check_folder("--out", run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115  (held until the block ends)
    except OSError as exc:
        raise ConfigError("--out", f"cannot create {run_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise ConfigError("--out", f"{run_dir} is in use by another run"
                                   f"{f' (process {holder})' if holder else ''}; wait for it "
                                   "to finish or choose another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _LOCKED.add(run_dir.resolve())
    try:
        yield run_dir
    finally:
        _LOCKED.discard(run_dir.resolve())
        handle.truncate(0)
        handle.close()                      # closing the file releases the lock


def prepare_run_dir(plan: Plan, out: str | Path | None, overwrite: bool = False) -> Path:
    """Create the run directory, or check that an existing one holds the same config; the
    check and the write of ``config.yaml`` happen under the directory's lock."""
    run_dir = run_dir_for(plan, out)
    config = resolved_config(plan)
    config_path = run_dir / "config.yaml"
    with locked_run_dir(run_dir):
        if config_path.exists() and not overwrite:
            existing = yaml.safe_load(config_path.read_text())
            if _comparable(existing) != _comparable(config):
                raise ConfigError("--out", f"{run_dir} holds a run with a different config; "
                                           "choose another --out, or pass --overwrite to "
                                           "start it afresh")
        if overwrite:
            _empty_run_dir(run_dir)
        (run_dir / "folds").mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_path, yaml.safe_dump(config, sort_keys=False))
    return run_dir


def _empty_run_dir(run_dir: Path) -> None:
    """Remove everything in ``run_dir`` except its lock file (held by this run)."""
    import shutil

    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _comparable(config: dict) -> dict:
    """Config without fields that do not change results (device, threads, deterministic
    algorithms, cache location, cluster resources, experiment tracking); ``amp`` and ``tf32``
    change them (unset in runs from before these options: off)."""
    out = {k: v for k, v in config.items()
           if k not in ("device", "threads", "deterministic", "cache_dir", "resources", "track",
                        "tracking")}
    out = {"amp": False, "tf32": False, **out}
    if isinstance(out.get("labels"), dict):   # unset label options (older runs lack the keys)
        out["labels"] = {k: v for k, v in out["labels"].items() if v is not None}
    options = out.get("options")
    if isinstance(options, dict) and isinstance(options.get("protocol"), dict):
        # runs before val_by was stated in config.yaml used val_by=trial under every protocol:
        # such a loso run differs from today's default (subject) and is not resumed
        out["options"] = {**options, "protocol": {"val_by": "trial", **options["protocol"]}}
    return out


def load_fold(fold_dir: Path) -> dict | None:
    path = fold_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None             # a damaged file: the fold is redone


def execute(plan: Plan, run_dir: Path, progress: bool = False, executor: str = "local",
            workers: int | None = None, **executor_options: Any) -> dict:
    """Run every unfinished fold with an executor, then write the summary.

    A fold that raises is retried once; if it fails again its traceback goes to
    ``folds/<k>/error.txt``, the other folds still run, and :class:`RunFailed` is raised after
    the summary of the finished folds has been written.
    """
    from affectlab.executors import create_executor

    _attach_log(run_dir)
    log.info("run %s: %d folds, method %s, protocol %s%s, executor %s", plan.run_name,
             len(plan.folds), plan.cfg.method, plan.cfg.protocol,
             " (LEAKY)" if plan.leaky else "", executor)
    pending = pending_folds(plan, run_dir)
    failed: dict[int, str] = {}
    with _Progress(progress, len(plan.folds)) as bar:
        bar.advance(len(plan.folds) - len(pending))

        def done(k: int, metrics: dict) -> None:
            log.info("fold %d (%s): accuracy %.4f, balanced %.4f, %.1fs", k, plan.folds[k].name,
                     metrics["accuracy"], metrics["balanced_accuracy"], metrics["seconds"])
            bar.advance(1)

        def error(k: int, trace: str) -> None:
            failed[k] = trace
            fold_dir = run_dir / "folds" / f"{k:03d}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(fold_dir / "error.txt", trace)
            log.error("fold %d (%s) failed twice:\n%s", k, plan.folds[k].name, trace)
            bar.advance(1)

        runner = create_executor(executor, workers=workers, **executor_options)
        runner.run(plan, run_dir, pending, done, error, on_epoch=bar.epoch,
                   on_start=bar.fold_start)
    summary = write_summary(plan, run_dir, failed)
    if failed:
        raise RunFailed(failure_message(plan, run_dir, failed), summary)
    return summary


def error_line(trace: str) -> str:
    """The first line of the error a traceback ends with (``Type: message``, the module path
    left out); the last non-empty line of any other text."""
    lines = trace.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    after = lines[starts[-1] + 1:] if starts else []
    line = next((x for x in after if x and not x[0].isspace()), lines[-1] if lines else "")
    name, colon, message = line.partition(":")
    return f"{name.rsplit('.', 1)[-1]}{colon}{message}" if " " not in name else line


def failure_message(plan: Plan, run_dir: Path, failed: dict[int, str], shown: int = 10) -> str:
    """What failed, one line per fold (name and first line of its error), and where the
    tracebacks and the summary are."""
    n_done = len(plan.folds) - len(failed)
    lines = [f"{len(failed)} of {len(plan.folds)} fold(s) failed after a retry:"]
    lines += [f"  fold {k} ({plan.folds[k].name}): {error_line(failed[k])}"
              for k in sorted(failed)[:shown]]
    if len(failed) > shown:
        lines.append(f"  ... and {len(failed) - shown} more")
    lines.append(f"tracebacks: {run_dir}/folds/<k>/error.txt; summary"
                 f"{f' of the {n_done} finished fold(s)' if n_done else ' of the failures'}: "
                 f"{run_dir}/summary.md")
    return "\n".join(lines)


def finished_folds(plan: Plan, run_dir: Path) -> int:
    """How many folds of ``plan`` have their results in ``run_dir``."""
    return sum(load_fold(run_dir / "folds" / f"{k:03d}") is not None
               for k in range(len(plan.folds)))


def pending_folds(plan: Plan, run_dir: Path) -> list[int]:
    """Folds without results (their old error.txt removed); finished ones are logged."""
    pending = []
    for k, fold in enumerate(plan.folds):
        fold_dir = run_dir / "folds" / f"{k:03d}"
        if load_fold(fold_dir) is not None:
            log.info("fold %d (%s) already finished: skipped", k, fold.name)
        else:
            (fold_dir / "error.txt").unlink(missing_ok=True)
            pending.append(k)
    return pending


class RunFailed(AffectlabError):
    """Some folds failed twice; the finished ones are kept and summarised."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; its finished folds are kept and the same run resumes them."""

    def __init__(self, run_dir: Path, finished: int, total: int):
        super().__init__(f"interrupted: {finished} of {total} fold(s) finished, kept in "
                         f"{run_dir}")
        self.run_dir, self.finished, self.total = run_dir, finished, total


def _attach_log(run_dir: Path) -> None:
    path = str(run_dir / "run.log")
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


class _Progress:
    """Progress bars over folds and epochs (rich), or nothing."""

    def __init__(self, enabled: bool, n_folds: int):
        self.enabled, self.n_folds = enabled, n_folds
        self.bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
            self.bar.start()
            self.folds = self.bar.add_task("folds", total=self.n_folds)
            self.epochs = self.bar.add_task("epochs", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def fold_start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.update(self.epochs, description=f"  {name}: epochs", completed=0,
                            total=None)

    def advance(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.advance(self.folds, n)

    def epoch(self, epoch: int, n_epochs: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.update(self.epochs, completed=epoch + 1, total=n_epochs)


def collect_folds(plan: Plan, run_dir: Path,
                  skip: set[int] | None = None) -> tuple[list[dict], pd.DataFrame]:
    metrics, tables = [], []
    for k in range(len(plan.folds)):
        if skip and k in skip:
            continue
        fold_dir = run_dir / "folds" / f"{k:03d}"
        result = load_fold(fold_dir)
        if result is None:
            raise AffectlabError(f"fold {k} has no results in {fold_dir}")
        metrics.append(result)
        tables.append(pd.read_csv(fold_dir / "predictions.csv").assign(fold=k))
    return metrics, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def write_summary(plan: Plan, run_dir: Path, failed: dict[int, str] | None = None) -> dict:
    """Aggregate the finished folds into summary.json, summary.md and report.html (failed
    folds named)."""
    failed = failed or {}
    per_fold, predictions = collect_folds(plan, run_dir, set(failed))
    if not per_fold:
        return _write_failure_summary(plan, run_dir, failed)
    names = [*evaluation.METRICS, "ovr_accuracy", "ovr_accuracy_chance",
             *evaluation.UNCERTAINTY_METRICS]
    summary = {
        "method": plan.cfg.method, "dataset": plan.cfg.dataset, "protocol": plan.cfg.protocol,
        "label_scheme": plan.labels.scheme, "classes": list(plan.labels.classes),
        "leaky": plan.leaky, "transductive": bool(
            plan.method_cls.transductive
            or plan.method_cls.uses_test_statistics(plan.method_config)),
        "n_folds": len(per_fold), "fold_names": [f["fold"] for f in per_fold],
        "metrics": evaluation.aggregate(per_fold, names),
        "per_subject": evaluation.per_subject(predictions),
        "n_windows": len(plan.windows), "dropped_windows": plan.n_dropped,
        "dropped": plan.losses,
        "data_preset": plan.preset, "forms": plan.windows.description.get("forms", {}),
        "seed": plan.cfg.seed, "config": resolved_config(plan),
        "numerics": numerics_record(plan.cfg),
        "validation": validation_record(plan, per_fold),
        "version": affectlab.__version__,
        "cache": str(plan.cache_path) if plan.cache_path else None,
        "complete": not failed,
        "failed_folds": _failed_folds(plan, failed),
    }
    summary.update(summary_statistics(summary, predictions, len(plan.labels.classes)))
    val = [f.get("val_metrics", {}) for f in per_fold]
    if any(val):
        summary["val_metrics"] = evaluation.aggregate(val, names)
    extras = [f.get("extras", {}) for f in per_fold]
    extra_names = sorted({k for e in extras for k in e})
    if extra_names:
        summary["extras"] = evaluation.aggregate(extras, extra_names)
    oracle = [f["oracle_best_epoch"]["accuracy"] for f in per_fold if "oracle_best_epoch" in f]
    if oracle:
        summary["oracle_best_epoch"] = {"accuracy": {"mean": float(np.mean(oracle)),
                                                     "std": float(np.std(oracle)),
                                                     "per_fold": oracle},
                                        "note": "best test epoch: selected on TEST labels, "
                                                "not an honest estimate"}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1,
                                                            default=_jsonable))
    atomic_write_text(run_dir / "summary.md", summary_markdown(summary))
    _write_html(run_dir)
    return summary


def _write_html(run_dir: Path) -> None:
    """``report.html`` beside the summary (a failure is logged; the results stand)."""
    from affectlab.html_report import try_write_run_report

    try_write_run_report(run_dir)


def numerics_record(cfg: RunConfig) -> list[str]:
    """How the folds computed, when not in torch's defaults: the numerics options that are on
    (``amp``, ``tf32``, ``deterministic``), as summary.json, summary.md and report.html
    declare them."""
    return [text for option, text in NUMERICS.items() if getattr(cfg, option)]


def validation_record(plan: Plan, per_fold: list[dict]) -> dict[str, Any]:
    """How each fold's validation part was carved: ``by`` (trial / subject), ``fraction``,
    ``seed`` (of the protocol's splits), and under ``by=subject`` the validation subjects of
    each finished fold."""
    opts = plan.protocol_options
    record: dict[str, Any] = {"by": opts.get("val_by"), "fraction": opts.get("val_fraction"),
                              "seed": opts.get("seed"),
                              "windows": int(sum(f.get("n_val", 0) for f in per_fold))}
    if opts.get("val_by") == "subject":
        record["subjects"] = {f["fold"]: f.get("info", {}).get("val_subjects", [])
                              for f in per_fold}
    return record


CI_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "kappa")


def summary_statistics(summary: dict, predictions: pd.DataFrame,
                       n_classes: int) -> dict[str, Any]:
    """``chance`` (majority-class and uniform-guess level per metric on the test parts'
    labels, averaged over folds as the metrics are), ``test_labels`` (class counts) and
    ``ci`` (mean over subjects with a 95 % bootstrap interval; see :mod:`affectlab.stats`)."""
    from affectlab import stats

    per_fold = [stats.chance_levels(rows["y_true"].to_numpy(), n_classes)
                for _, rows in predictions.groupby("fold")]
    counts = np.bincount(predictions["y_true"].to_numpy(dtype=int), minlength=n_classes)
    return {"chance": stats.mean_chance(per_fold),
            "test_labels": dict(zip(summary["classes"], counts.tolist(), strict=True)),
            "ci": {m: stats.mean_ci(summary, m) for m in CI_METRICS
                   if m in summary["metrics"]}}


def _statistics_lines(summary: dict) -> list[str]:
    """summary.md's lines on chance levels and confidence intervals."""
    lines = []
    for name, ci in summary.get("ci", {}).items():
        chance = summary.get("chance", {}).get(name, {})
        interval = (f"95 % CI [{_fmt(ci['ci_low'])}, {_fmt(ci['ci_high'])}]"
                    if ci["ci_low"] is not None else "no CI (fewer than 2)")
        level = (f"; chance: majority {_fmt(chance['majority'])}, uniform "
                 f"{_fmt(chance['uniform'])}" if chance else "")
        lines.append(f"- {name}: mean over {ci['n']} {ci['unit']} {_fmt(ci['mean'])}, "
                     f"{interval}{level}")
    if lines:
        first = next(iter(summary["ci"].values()))
        lines = ["", f"Statistics (bootstrap CI of the mean, seed {first['seed']}; chance "
                     "levels of the test labels, averaged over folds):", "", *lines]
    return lines


def _failed_folds(plan: Plan, failed: dict[int, str]) -> list[dict[str, Any]]:
    return [{"index": k, "fold": plan.folds[k].name, "error": error_line(failed[k])}
            for k in sorted(failed)]


def _write_failure_summary(plan: Plan, run_dir: Path, failed: dict[int, str]) -> dict:
    """summary.json and summary.md of a run whose every fold failed: the failures."""
    summary = {"method": plan.cfg.method, "dataset": plan.cfg.dataset,
               "protocol": plan.cfg.protocol, "label_scheme": plan.labels.scheme,
               "leaky": plan.leaky, "n_folds": 0, "metrics": {}, "complete": False,
               "failed_folds": _failed_folds(plan, failed), "seed": plan.cfg.seed,
               "config": resolved_config(plan), "version": affectlab.__version__}
    lines = [f"# {plan.cfg.method} on {plan.cfg.dataset} — {plan.cfg.protocol} "
             f"({plan.labels.scheme})", "", f"**Every fold failed** ({len(failed)}):", ""]
    lines += _failure_lines(summary)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1,
                                                            default=_jsonable))
    atomic_write_text(run_dir / "summary.md", "\n".join(lines) + "\n")
    _write_html(run_dir)
    return summary


def _failure_lines(summary: dict) -> list[str]:
    return [f"**Fold {failure['index']} ({failure['fold']}) FAILED**: {failure['error']} "
            f"(see folds/{failure['index']:03d}/error.txt)."
            for failure in summary.get("failed_folds", [])]


def summary_markdown(summary: dict) -> str:
    """A readable summary: header, flags, per-fold table and mean +- std."""
    lines = [f"# {summary['method']} on {summary['dataset']} — {summary['protocol']} "
             f"({summary['label_scheme']})", ""]
    losses = summary.get("dropped") or {}
    if losses.get("subjects"):
        lines += [f"**Subjects dropped**: {losses_line(losses)}.", ""]
    if summary["leaky"]:
        lines += ["**LEAKY protocol**: windows of one trial are on both sides of the split; the "
                  "figures below overestimate generalisation.", ""]
    if summary["transductive"]:
        lines += ["Transductive: the method used the test part's data without labels.", ""]
    metrics = summary["metrics"]
    shown = [m for m in ("accuracy", "balanced_accuracy", "f1_macro", "kappa", "ece",
                         "error_auroc") if m in metrics]
    lines += ["| fold | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for k, name in enumerate(summary["fold_names"]):
        cells = [_fmt(metrics[m]["per_fold"][k]) for m in shown]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **mean ± std** | " + " | ".join(
        f"{_fmt(metrics[m]['mean'])} ± {_fmt(metrics[m]['std'])}" for m in shown) + " |")
    if "oracle_best_epoch" in summary:
        o = summary["oracle_best_epoch"]["accuracy"]
        lines += ["", f"oracle_best_epoch accuracy (selected on test labels, NOT honest): "
                      f"{_fmt(o['mean'])} ± {_fmt(o['std'])}"]
    lines += _statistics_lines(summary)
    lines += ["", f"{summary['n_folds']} folds, seed {summary['seed']}, affectlab "
                  f"{summary['version']}, data preset `{summary['data_preset']}`."]
    lines += _validation_lines(summary.get("validation") or {})
    if summary.get("numerics"):
        lines.append(f"Numerics: {', '.join(summary['numerics'])}.")
    if losses.get("windows") and not losses.get("subjects"):
        lines.append(f"Data: {losses_line(losses)}.")
    lines += _missing_lines(losses)
    lines += _failure_lines(summary)
    return "\n".join(lines) + "\n"


def _validation_lines(record: dict) -> list[str]:
    """summary.md's line on the validation part (what a sweep ranks by)."""
    if not record.get("by") or not record.get("windows"):
        return []
    unit = "subjects" if record["by"] == "subject" else "trials"
    return [f"Validation part: whole training {unit} (protocol.val_by={record['by']}, "
            f"val_fraction={record['fraction']}, seed {record['seed']}); never test data."]


def _missing_lines(losses: dict) -> list[str]:
    """What the data preset marked missing (before the runner's drop), per modality."""
    lines = []
    for name, counts in losses.get("preset_missing", {}).items():
        if counts.get("absent_windows") or counts.get("invalid_windows"):
            lines.append(f"Missing {name}: absent in {counts['absent_trials']} trial(s) "
                         f"({counts['absent_windows']} windows), non-finite / untracked in "
                         f"{counts['invalid_windows']} windows.")
    if losses.get("trials_without_windows"):
        lines.append(f"Trials without windows: {losses['trials_without_windows']}.")
    for rating, count in losses.get("invalid_ratings", {}).items():
        lines.append(f"Ratings off the scale: {rating} in {count} trial(s), marked missing.")
    for name, flat in losses.get("flat_channels", {}).items():
        channels = ", ".join(f"{ch} ({n})" for ch, n in flat["channels"].items())
        lines.append(f"Flat {name} channels (constant over a whole recording; trials per "
                     f"channel): {channels}; {flat['trials']} trial(s), {flat['windows']} "
                     f"windows, marked missing.")
    for path, entry in losses.get("unlisted", {}).items():
        lines.append(f"Not in {Path(path).name}: subject(s) "
                     f"{', '.join(map(str, entry['subjects']))} ({entry['trials']} trials), "
                     f"{entry['effect']}.")
    if losses.get("absent_modalities"):
        lines.append(f"Absent from every recording (left out): "
                     f"{', '.join(losses['absent_modalities'])}.")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def run_experiment(cfg: RunConfig, out: str | Path | None = None, overwrite: bool = False,
                   progress: bool = False, executor: str = "local", workers: int | None = None,
                   **executor_options: Any) -> tuple[dict, Path]:
    """Check the options, plan, lock and create / resume the run directory, run the folds,
    summarise, log to the tracker (``cfg.track``; a failure there is a warning). Ctrl-C raises
    :class:`RunInterrupted` (finished folds kept); every fold failing raises :class:`RunFailed`
    after the summary of the failures is written (and tracked)."""
    from affectlab.executors import check_executor

    check_executor(executor, workers)
    if executor != "ray":                       # Ray's workers have their own devices
        check_device(cfg.device)
    check_folder("--out", out or "runs")
    plan = plan_run(cfg, progress=progress)
    with locked_run_dir(run_dir_for(plan, out)) as run_dir:
        prepare_run_dir(plan, run_dir, overwrite)
        try:
            try:
                summary = execute(plan, run_dir, progress=progress, executor=executor,
                                  workers=workers, **executor_options)
            except RunFailed:
                _track(plan.cfg, run_dir)
                raise
            _track(plan.cfg, run_dir)
        except KeyboardInterrupt:
            raise RunInterrupted(run_dir, finished_folds(plan, run_dir),
                                 len(plan.folds)) from None
    return summary, run_dir


def _track(cfg: RunConfig, run_dir: Path) -> None:
    """Log the ended run to ``cfg.track`` from its run directory (once: a resumed or repeated
    run replaces its earlier entry); a tracking failure is logged, never raised."""
    if cfg.track is None:
        return
    from affectlab.tracking import try_track_run

    try_track_run(run_dir, cfg.track, cfg.tracking.uri, cfg.tracking.experiment)


class _CallableModule(ModuleType):
    """This module, callable as :func:`affectlab.api.run`: importing ``affectlab.run`` binds
    the package's ``run`` attribute to the module, and ``affectlab.run(...)`` must still run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from affectlab.api import run

        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
