"""The package's top-level functions: ``affectlab.load``, ``affectlab.run`` and
``affectlab.reproduce``, and :class:`Results`, a run directory read back as tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from affectlab.data import WindowSet
    from affectlab.methods import Method


def load(dataset: str, root: str | Path, preset: str = "default", *,
         cache_dir: str | Path | None = None, progress: bool = False,
         **options: Any) -> WindowSet:
    """The windows of ``dataset`` under data preset ``preset``, read from ``root`` (the folder
    as released) and cached (:func:`affectlab.presets.prepare`). ``options`` are data options,
    e.g. ``window_s=2`` (``affectlab info`` / the README's data presets list them)."""
    from affectlab.presets import prepare

    windows, _ = prepare(dataset, root, preset, options, cache_dir=cache_dir,
                         progress=progress)
    return windows


def run(method: str | type[Method], dataset: str, root: str | Path,
        protocol: str = "subject_dependent", *, out: str | Path | None = None,
        overwrite: bool = False, executor: str = "local", workers: int | None = None,
        executor_options: dict[str, Any] | None = None, progress: bool = False,
        **config: Any) -> Results:
    """Run ``method`` under ``protocol`` exactly as ``affectlab run`` does (run directory,
    resume, summary) and return the :class:`Results`.

    method: a registered name, an import path ``module:Class``, an ``affectlab.methods`` entry
        point, or a :class:`~affectlab.methods.Method` subclass (e.g. from
        :func:`~affectlab.adapters.SklearnMethod`).
    config: any other run option: ``labels`` (a scheme name or ``{"scheme", "threshold",
        "inclusive"}``), ``preset``, ``method_preset``, ``seed``, ``modalities``, ``device``,
        ``options={"method": {...}, "protocol": {...}, "data": {...}}``, ... (the README's
        configuration section).
    executor_options: for ``executor="ray"``: ``address``, ``ship_data``; for
        ``executor="process"``: ``devices`` (``["cuda:0", "cuda:1"]`` or ``"auto"``: one
        CUDA device per worker) and ``workers_per_device``.
    """
    from affectlab.plugins import method_reference
    from affectlab.run import load_config, run_experiment

    if isinstance(method, type):
        method = method_reference(method)
    if isinstance(config.get("labels"), str):
        config["labels"] = {"scheme": config["labels"]}
    cfg = load_config({"method": method, "dataset": dataset, "root": str(root),
                       "protocol": protocol, **config})
    _, run_dir = run_experiment(cfg, out=out, overwrite=overwrite, progress=progress,
                                executor=executor, workers=workers,
                                **(executor_options or {}))
    return Results.load(run_dir)



def reproduce(method: str, dataset: str, root: str | Path, *, method_preset: str = "default",
              out: str | Path | None = None, overrides: list[str] | None = None,
              overwrite: bool = False, progress: bool = False,
              **config: Any) -> pd.DataFrame:
    """Run a paper method under its paper's protocol and selection and under an honest
    counterpart on the same data, exactly as ``affectlab reproduce`` does (two run
    directories under ``out``, resumable; ``reproduce.json`` / ``.md`` / ``.html``), and
    return the table: a row per setting (``mean``, ``std``, ``ci_low``, ``ci_high`` of the
    accuracy, ``labels`` such as LEAKY / ORACLE), then ``gap`` (paper setting minus honest)
    and ``reported`` (the paper's number and its source).

    overrides: ``--set`` strings applied to both runs, e.g. ``["method.epochs=5"]``.
    config: any other run option for both runs, e.g. ``cache_dir``, ``seed``, ``max_folds``.
    The settings are :data:`affectlab.reproduction.PAPER_SETTINGS`.
    """
    from affectlab.reproduction import as_frame, run_reproduction

    result, _ = run_reproduction(method, dataset, root, method_preset=method_preset, out=out,
                                 overrides=overrides, overwrite=overwrite, progress=progress,
                                 **config)
    return as_frame(result)

@dataclass
class Results:
    """A run directory read back: ``summary`` (summary.json) and, read on first use,
    ``per_fold``, ``per_subject`` and ``predictions`` as pandas DataFrames."""

    run_dir: Path
    summary: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, run_dir: str | Path) -> Results:
        """The results of a finished (or partly finished) run directory."""
        run_dir = Path(run_dir)
        return cls(run_dir, json.loads((run_dir / "summary.json").read_text()))

    def _fold_dirs(self) -> list[Path]:
        return sorted(p.parent for p in (self.run_dir / "folds").glob("*/metrics.json"))

    @cached_property
    def per_fold(self) -> pd.DataFrame:
        """One row per finished fold: ``fold`` (name), ``fold_index``, every metric, part sizes
        (``n_train``, ``n_val``, ``n_test``, ``n_unlabeled``), ``seconds``, the fold's info
        (e.g. ``subject``), ``val_<metric>`` and the method's extras."""
        import pandas as pd

        rows = [_fold_row(json.loads((d / "metrics.json").read_text()))
                for d in self._fold_dirs()]
        return pd.DataFrame(rows)

    @cached_property
    def per_subject(self) -> pd.DataFrame:
        """One row per test subject: ``subject``, ``accuracy``, ``balanced_accuracy``,
        ``n_test`` (over every fold that tested the subject)."""
        import pandas as pd

        table = pd.DataFrame.from_dict(self.summary.get("per_subject", {}), orient="index")
        table.index = [int(s) if str(s).lstrip("-").isdigit() else s for s in table.index]
        return table.rename_axis("subject").reset_index()

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """One row per test window and fold: ``index`` (position in the run's windows),
        ``subject``, ``session``, ``trial``, ``window``, ``y_true``, ``y_pred``, ``prob_<k>``
        (and ``uncertainty``), with ``fold`` (name) and ``fold_index``."""
        import pandas as pd

        tables = []
        for fold_dir in self._fold_dirs():
            metrics = json.loads((fold_dir / "metrics.json").read_text())
            tables.append(pd.read_csv(fold_dir / "predictions.csv").assign(
                fold=metrics["fold"], fold_index=metrics["index"]))
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _fold_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """A fold's metrics.json as one flat row (lists such as the confusion matrix left out)."""
    row: dict[str, Any] = {"fold": metrics["fold"], "fold_index": metrics["index"]}
    for key, value in metrics.items():
        if key not in ("fold", "index") and _scalar(value):
            row[key] = value
    for key, value in metrics.get("info", {}).items():
        if _scalar(value):
            row.setdefault(key, value)
    for key, value in metrics.get("val_metrics", {}).items():
        if _scalar(value):
            row[f"val_{key}"] = value
    for key, value in metrics.get("extras", {}).items():
        if _scalar(value):
            row.setdefault(key, value)
    return row


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)
