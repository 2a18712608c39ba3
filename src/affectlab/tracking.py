"""Optional experiment tracking: a finished run directory logged to MLflow (``--track mlflow``).

The tracker reads what the runner wrote (``config.yaml``, ``summary.json``,
``folds/<k>/metrics.json`` and ``history.csv``) once the run has ended, so it cannot change or
slow down the folds, a resumed run is logged once, and ``affectlab track RUN_DIR`` logs an older
run the same way. One MLflow run per run directory (params: the flattened resolved config;
metrics: each metric's mean over folds, std, 95 % CI and chance levels; tags: the honesty flags;
artifacts: config.yaml, summary.json, summary.md, report.html) with one nested run per fold (the
fold's metrics, its validation metrics and the per-epoch values of history.csv as
``epoch/<key>``, step = epoch).

``tracking.json`` in the run directory records, per tracking URI, the MLflow run ids and a
fingerprint of the files logged: tracking the same unchanged run again logs nothing, and a run
whose results changed (a resumed run with more folds) replaces its earlier MLflow runs.

This module imports MLflow (``pip install "affectlab[mlflow]"``, i.e. ``mlflow-skinny``) only
when it logs. The default store is a local file store, ``./mlruns`` in the working folder
(``MLFLOW_TRACKING_URI`` or ``tracking.uri`` choose another; no server is needed).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from affectlab.errors import AffectlabError, ConfigError, check_option

log = logging.getLogger("affectlab.tracking")    # no handler: warnings reach stderr
run_log = logging.getLogger("affectlab.run")     # the run's run.log
TRACKERS = ("mlflow",)
DEFAULT_STORE = "mlruns"
RECORD = "tracking.json"
ARTIFACTS = ("config.yaml", "summary.json", "summary.md", "report.html")
MAX_PARAM_LENGTH = 500            # MLflow's limit before 2.x raised it to 6000
BATCH = 100                       # params / tags per log_batch call (MLflow's limit)
METRIC_BATCH = 1000
EPOCH_PREFIX = "epoch/"           # history.csv's values: epoch/val_loss, ... (step = epoch)
INSTALL = "pip install 'affectlab[mlflow]' (mlflow-skinny)"


# --------------------------------------------------------------------------- options

def check_tracking(track: str | None) -> None:
    """``track`` is a known tracker whose package is installed; checked before any data is
    read (cheap: MLflow is not imported)."""
    if track is None:
        return
    check_option("track", track, TRACKERS)
    if not mlflow_installed():
        raise ConfigError("track", f"got 'mlflow', but MLflow is not installed: {INSTALL}")


def mlflow_installed() -> bool:
    """Whether MLflow can be imported (found, not imported)."""
    return importlib.util.find_spec("mlflow") is not None


def tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``MLFLOW_TRACKING_URI``, else the file store ``./mlruns``; a plain path
    (or a relative ``file:`` URI) as an absolute ``file://`` URI."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path)).resolve().as_uri()
    if not parsed.scheme or len(parsed.scheme) == 1:      # a path (or a Windows drive letter)
        return Path(uri).resolve().as_uri()
    return uri


def file_store(uri: str) -> Path | None:
    """The folder of a ``file://`` tracking URI; ``None`` for any other store."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def default_experiment(config: dict[str, Any]) -> str:
    """``<dataset>-<protocol>-<label scheme>``: the runs ``affectlab compare`` can compare."""
    labels = config.get("labels") or {}
    return "-".join(str(part) for part in (config.get("dataset"), config.get("protocol"),
                                           labels.get("scheme")) if part)


# --------------------------------------------------------------------------- logging

def try_track_run(run_dir: str | Path, track: str = "mlflow", uri: str | None = None,
                  experiment: str | None = None) -> str | None:
    """:func:`track_run`, logging (not raising) a failure: tracking never fails a run."""
    try:
        return track_run(run_dir, track, uri, experiment)
    except Exception as exc:                     # noqa: BLE001  (tracking never fails a run)
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        for logger in (log, run_log):
            logger.warning("%s tracking failed (%s: %s); the run directory is complete; log it "
                           "later with: affectlab track %s", track, type(exc).__name__, line,
                           run_dir)
        return None


def track_run(run_dir: str | Path, track: str = "mlflow", uri: str | None = None,
              experiment: str | None = None) -> str:
    """Log the run directory ``run_dir`` (finished, or with failed folds) to MLflow; return the
    MLflow run id of the run (its folds are nested runs). Logged once per URI: an unchanged
    run already logged is not logged again; a changed one replaces its earlier MLflow runs."""
    check_option("track", track, TRACKERS)
    run_dir = Path(run_dir)
    for name in ("config.yaml", "summary.json"):
        if not (run_dir / name).is_file():
            raise AffectlabError(f"{run_dir}: no {name} (is this a finished run directory?)")
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    summary = json.loads((run_dir / "summary.json").read_text())
    uri = tracking_uri(uri or (config.get("tracking") or {}).get("uri"))
    experiment = (experiment or (config.get("tracking") or {}).get("experiment")
                  or default_experiment(config))
    client = _client(uri)
    fingerprint = _fingerprint(run_dir)
    record = _read_record(run_dir)
    earlier = record.get(uri)
    if earlier and earlier.get("fingerprint") == fingerprint and _active(client,
                                                                        earlier["run_id"]):
        run_log.info("MLflow: %s already logged as run %s (%s)", run_dir, earlier["run_id"], uri)
        return earlier["run_id"]
    if earlier:
        _delete(client, [earlier.get("run_id"), *earlier.get("fold_run_ids", [])])
    experiment_id = _experiment(client, experiment)
    parent, folds = _log(client, experiment_id, run_dir, config, summary)
    record[uri] = {"experiment": experiment, "experiment_id": experiment_id, "run_id": parent,
                   "fold_run_ids": folds, "fingerprint": fingerprint,
                   "logged": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_record(run_dir, record)
    run_log.info("MLflow: %s logged as run %s in experiment %s (%s)", run_dir, parent, experiment,
             uri)
    return parent


def _client(uri: str) -> Any:
    """An MLflow client of ``uri``: file stores allowed (MLflow 3 refuses them unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set), few retries against a server (a dead one must not
    hold the run up for minutes); an environment variable already set is kept."""
    if file_store(uri) is not None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    else:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise AffectlabError(f"MLflow is not installed: {INSTALL}") from exc
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (another run may create it at the
    same moment)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:                            # noqa: BLE001  (created meanwhile elsewhere)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _log(client: Any, experiment_id: str, run_dir: Path, config: dict,
         summary: dict) -> tuple[str, list[str]]:
    """The parent run and one nested run per fold (finished or failed); their ids."""
    complete = summary.get("complete", True)
    run = client.create_run(experiment_id, run_name=run_dir.name, tags=_run_tags(
        run_dir, config, summary))
    parent = run.info.run_id
    try:
        params = flat_params({k: v for k, v in config.items() if k not in ("track", "tracking")})
        _batch(client, parent, params=params, metrics=summary_metrics(summary))
        fold_ids = []
        for fold_dir in sorted((run_dir / "folds").glob("*/metrics.json")):
            fold_ids.append(_log_fold(client, experiment_id, parent, fold_dir.parent))
        for failure in summary.get("failed_folds") or []:
            fold_ids.append(_log_failed_fold(client, experiment_id, parent, failure))
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                client.log_artifact(parent, str(run_dir / name))
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED" if complete and summary.get("n_folds") else "FAILED")
    return parent, fold_ids


def _run_tags(run_dir: Path, config: dict, summary: dict) -> dict[str, str]:
    """What a reader must know before reading the numbers, as tags (``true`` / ``false``), and
    where the run directory is; the HTML report's honesty sentences as the run's note."""
    failed = summary.get("failed_folds") or []
    tags = {
        "affectlab.run_dir": str(run_dir.resolve()),
        "affectlab.version": str(summary.get("version", "")),
        "method": str(summary.get("method", config.get("method"))),
        "dataset": str(summary.get("dataset", config.get("dataset"))),
        "protocol": str(summary.get("protocol", config.get("protocol"))),
        "label_scheme": str(summary.get("label_scheme", "")),
        "leaky": _bool(summary.get("leaky")),
        "transductive": _bool(summary.get("transductive")),
        "fast_preset": _bool(config.get("method_preset") == "fast"),
        "oracle": _bool("oracle_best_epoch" in summary or config.get("report_oracle")),
        "max_folds": str(config.get("max_folds")) if config.get("max_folds") else "none",
        "complete": _bool(summary.get("complete", True) and not failed),
        "failed_folds": str(len(failed)),
        "mlflow.source.name": "affectlab",
        "mlflow.source.type": "LOCAL",
    }
    note = _flag_sentences(summary)
    if note:
        tags["mlflow.note.content"] = "\n\n".join(note)
    return tags


def _flag_sentences(summary: dict) -> list[str]:
    try:
        from affectlab.html_report import honesty_flags

        return [sentence for _, sentence in honesty_flags(summary)]
    except Exception:                            # noqa: BLE001  (a note is not essential)
        return []


def _log_fold(client: Any, experiment_id: str, parent: str, fold_dir: Path) -> str:
    """A nested run for one finished fold: its metrics, validation metrics (``val_<m>``),
    sizes, the method's extras and history.csv's per-epoch values (``epoch/<key>``, step =
    epoch)."""
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    name = str(metrics.get("fold", fold_dir.name))
    index = metrics.get("index", int(fold_dir.name) if fold_dir.name.isdigit() else 0)
    run = client.create_run(experiment_id, run_name=name, tags={
        "mlflow.parentRunId": parent, "fold": name, "fold_index": str(index)})
    params = {"fold": name, "fold_index": index,
              **{f"info.{k}": v for k, v in (metrics.get("info") or {}).items()},
              "train_modalities": metrics.get("train_modalities"),
              "test_modalities": metrics.get("test_modalities")}
    values = {k: v for k, v in metrics.items() if _number(v)}
    values.pop("index", None)
    values.update({f"val_{k}": v for k, v in (metrics.get("val_metrics") or {}).items()
                   if _number(v)})
    values.update({f"extras.{k}": v for k, v in (metrics.get("extras") or {}).items()
                   if _number(v)})
    oracle = (metrics.get("oracle_best_epoch") or {}).get("accuracy")
    if _number(oracle):
        values["oracle_best_epoch_accuracy"] = oracle
    now = _now()
    points = [(key, float(value), 0, now) for key, value in values.items()]
    points += list(_history(fold_dir / "history.csv", now))
    _batch(client, run.info.run_id, params={k: v for k, v in params.items() if v is not None},
           metrics=points)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _log_failed_fold(client: Any, experiment_id: str, parent: str, failure: dict) -> str:
    """A nested run, status FAILED, for a fold that failed twice (its error's first line)."""
    run = client.create_run(experiment_id, run_name=str(failure.get("fold")), tags={
        "mlflow.parentRunId": parent, "fold": str(failure.get("fold")),
        "fold_index": str(failure.get("index")), "error": str(failure.get("error"))[:5000]})
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def _history(path: Path, now: int) -> Iterator[tuple[str, float, int, int]]:
    """``(epoch/<key>, value, step, timestamp)`` for every numeric value of history.csv (step:
    the 1-based epoch; the prefix keeps a method's per-epoch ``val_balanced_accuracy`` apart
    from the fold's final one)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                step = int(float(row.get("epoch") or 0))
            except ValueError:
                continue
            for key, text in row.items():
                if key in ("epoch", "n_epochs") or key is None or text in (None, ""):
                    continue
                try:
                    value = float(text)
                except ValueError:
                    continue
                yield f"{EPOCH_PREFIX}{key}", value, step, now + step


def summary_metrics(summary: dict) -> list[tuple[str, float, int, int]]:
    """The run's figures: ``<metric>`` (the mean over folds), ``<metric>_std``,
    ``<metric>_ci_low`` / ``_ci_high`` (95 % bootstrap CI over subjects or folds),
    ``<metric>_chance_majority`` / ``_uniform``, ``val_<metric>``, ``extras.<name>``,
    ``oracle_best_epoch_accuracy`` (test-selected), ``n_folds``, ``n_windows``."""
    values: dict[str, Any] = {}
    for name, agg in (summary.get("metrics") or {}).items():
        values[name], values[f"{name}_std"] = agg.get("mean"), agg.get("std")
    for name, ci in (summary.get("ci") or {}).items():
        values[f"{name}_ci_low"], values[f"{name}_ci_high"] = ci.get("ci_low"), ci.get("ci_high")
    for name, chance in (summary.get("chance") or {}).items():
        for kind in ("majority", "uniform"):
            values[f"{name}_chance_{kind}"] = chance.get(kind)
    for name, agg in (summary.get("val_metrics") or {}).items():
        values[f"val_{name}"] = agg.get("mean")
    for name, agg in (summary.get("extras") or {}).items():
        values[f"extras.{name}"] = agg.get("mean")
    oracle = (summary.get("oracle_best_epoch") or {}).get("accuracy") or {}
    values["oracle_best_epoch_accuracy"] = oracle.get("mean")
    values["n_folds"], values["n_windows"] = summary.get("n_folds"), summary.get("n_windows")
    now = _now()
    return [(key, float(value), 0, now) for key, value in values.items() if _number(value)]


def flat_params(config: dict, prefix: str = "") -> dict[str, Any]:
    """The resolved config as MLflow params: nested groups joined with dots
    (``options.method.epochs``, ``labels.scheme``); lists as JSON."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        elif not isinstance(value, dict):
            out[name] = value
    return out


def _batch(client: Any, run_id: str, params: dict[str, Any] | None = None,
           metrics: list[tuple[str, float, int, int]] | None = None) -> None:
    """``log_batch`` in MLflow's batch sizes; keys limited to the characters MLflow accepts,
    values to its length limit."""
    from mlflow.entities import Metric, Param

    items = [Param(_key(k), _text(v)) for k, v in (params or {}).items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[start:start + BATCH])
    points = [Metric(_key(k), v, timestamp, step) for k, v, step, timestamp in metrics or []]
    for start in range(0, len(points), METRIC_BATCH):
        client.log_batch(run_id, metrics=points[start:start + METRIC_BATCH])


def _key(name: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", str(name))[:250]


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[:MAX_PARAM_LENGTH - 3] + "..."


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _now() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- the record

def _fingerprint(run_dir: Path) -> str:
    """A hash of the files the MLflow run is made of (the config, the summary and every
    fold's metrics and history)."""
    digest = hashlib.sha256()
    files = [run_dir / "config.yaml", run_dir / "summary.json",
             *sorted((run_dir / "folds").glob("*/metrics.json")),
             *sorted((run_dir / "folds").glob("*/history.csv"))]
    for path in files:
        digest.update(str(path.relative_to(run_dir)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def _read_record(run_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((run_dir / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    tmp = run_dir / f".{RECORD}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, run_dir / RECORD)


def _active(client: Any, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:                            # noqa: BLE001  (gone: log it again)
        return False


def _delete(client: Any, run_ids: list[str | None]) -> None:
    """Earlier MLflow runs of this run directory (moved to MLflow's trash)."""
    for run_id in run_ids:
        if run_id and _active(client, run_id):
            client.delete_run(run_id)
