"""Optional MLflow tracking (``--track mlflow``): what a run logs to a local file store, read
back with MLflow's client; logged once when a run is resumed or repeated; a tracking failure is
a warning, a bad ``track`` value a one-line error."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
from typer.testing import CliRunner

from affectlab.errors import ConfigError
from affectlab.run import load_config, run_experiment
from affectlab.tracking import track_run
from run_helpers import config

needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                  reason="mlflow-skinny not installed (the mlflow extra)")


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


@pytest.fixture
def cache(windowset_cache):
    return {"cache_dir": str(windowset_cache)}


def _client(store):
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.resolve().as_uri())


def _runs(client, experiment):
    """(parent, children) of the experiment's active runs."""
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@needs_mlflow
def test_logreg_run_is_logged_once_with_params_folds_tags_and_artifacts(deap, tmp_path, cache):
    store = tmp_path / "mlruns"
    cfg = config(deap, tmp_path, track="mlflow", tracking={"uri": str(store)}, **cache)
    summary, run_dir = run_experiment(cfg, out=tmp_path / "run")
    client = _client(store)
    parents, children = _runs(client, "deap-loso-binary_valence")
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    params, metrics, tags = parent.data.params, parent.data.metrics, parent.data.tags
    assert params["method"] == "logreg" and params["dataset"] == "deap"
    assert params["protocol"] == "loso" and params["labels.scheme"] == "binary_valence"
    assert params["seed"] == "0" and params["method_preset"] == "fast"
    assert params["options.method.C"] and params["options.data.window_s"]
    assert "track" not in params and not any(k.startswith("tracking.") for k in params)
    balanced = summary["metrics"]["balanced_accuracy"]
    assert metrics["balanced_accuracy"] == pytest.approx(balanced["mean"])
    assert metrics["balanced_accuracy_std"] == pytest.approx(balanced["std"])
    ci = summary["ci"]["balanced_accuracy"]
    assert metrics["balanced_accuracy_ci_low"] == pytest.approx(ci["ci_low"])
    assert "balanced_accuracy_chance_majority" in metrics and metrics["n_folds"] == 3
    assert tags["fast_preset"] == "true" and tags["leaky"] == "false"
    assert tags["transductive"] == "false" and tags["complete"] == "true"
    assert tags["mlflow.runName"] == "run" and "smoke test" in tags["mlflow.note.content"]
    assert parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"config.yaml", "summary.json", "summary.md", "report.html"}
    by_fold = {c.data.tags["fold_index"]: c for c in children}
    for k, per_fold in enumerate(balanced["per_fold"]):
        fold = by_fold[str(k)]
        assert fold.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert fold.data.metrics["balanced_accuracy"] == pytest.approx(per_fold)
        assert "val_balanced_accuracy" in fold.data.metrics and "n_train" in fold.data.metrics
        assert fold.data.params["info.subject"] == str(k + 1)
    record = json.loads((run_dir / "tracking.json").read_text())
    assert record[store.resolve().as_uri()]["run_id"] == parent.info.run_id

    run_experiment(cfg, out=tmp_path / "run")            # finished: nothing logged again
    assert [len(runs) for runs in _runs(client, "deap-loso-binary_valence")] == [1, 3]
    (run_dir / "folds" / "002" / "metrics.json").unlink()
    run_experiment(cfg, out=tmp_path / "run")            # resumed: still one entry
    assert [len(runs) for runs in _runs(client, "deap-loso-binary_valence")] == [1, 3]
    fold_file = run_dir / "folds" / "002" / "metrics.json"
    fold_file.write_text(json.dumps({**json.loads(fold_file.read_text()), "seconds": 99}))
    replaced = track_run(run_dir)                        # changed: the earlier entry replaced
    parents, children = _runs(client, "deap-loso-binary_valence")
    assert len(parents) == 1 and len(children) == 3 and replaced != parent.info.run_id
    assert parents[0].info.run_id == replaced
    assert {c.data.metrics["seconds"] for c in children if c.data.tags["fold_index"] == "2"} \
        == {99}


@needs_mlflow
def test_cli_mlp_run_logs_per_epoch_metrics_and_track_command(deap, tmp_path, monkeypatch,
                                                               windowset_cache):
    from affectlab.cli import app, experiment  # noqa: F401  (registers the commands)

    monkeypatch.chdir(tmp_path)                      # the default store: ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, [
        "run", "--method", "mlp", "--dataset", "deap", "--root", str(deap), "--protocol",
        "loso", "--method-preset", "fast", "--preset", "m2s", "--out", "run", "--track",
        "mlflow", "--set", "max_folds=1", "--set", f"cache_dir={windowset_cache}",
        "--set", "tracking.experiment=curves"])
    assert result.exit_code == 0, result.output
    client = _client(tmp_path / "mlruns")
    parents, (fold,) = _runs(client, "curves")
    history = client.get_metric_history(fold.info.run_id, "epoch/val_loss")
    rows = (tmp_path / "run" / "folds" / "000" / "history.csv").read_text().splitlines()
    assert [m.step for m in history] == list(range(1, len(rows)))
    assert parents[0].data.tags["max_folds"] == "1"

    other = tmp_path / "other-store"
    result = CliRunner().invoke(app, ["track", "run", "--uri", str(other)])
    assert result.exit_code == 0 and "MLflow run" in result.output, result.output
    assert len(_runs(_client(other), "curves")[0]) == 1
    assert set(json.loads((tmp_path / "run" / "tracking.json").read_text())) == {
        (tmp_path / "mlruns").resolve().as_uri(), other.resolve().as_uri()}


@needs_mlflow
def test_a_tracking_failure_is_a_warning(deap, tmp_path, monkeypatch, caplog, cache):
    import affectlab.tracking

    def broken(uri):
        raise RuntimeError("the tracking server is down")

    monkeypatch.setattr(affectlab.tracking, "_client", broken)
    cfg = config(deap, tmp_path, track="mlflow", tracking={"uri": str(tmp_path / "mlruns")},
                 max_folds=1, **cache)
    with caplog.at_level(logging.WARNING, logger="affectlab.run"):
        summary, run_dir = run_experiment(cfg, out=tmp_path / "run")
    assert summary["n_folds"] == 1 and (run_dir / "summary.json").exists()
    assert "mlflow tracking failed (RuntimeError: the tracking server is down)" in caplog.text
    assert not (run_dir / "tracking.json").exists()


def test_bad_track_values_are_one_line_errors(deap, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"option 'track': got 'wandb'; allowed: mlflow$"):
        config(deap, tmp_path, track="wandb")
    with pytest.raises(ConfigError, match=r"option 'tracking.url': unknown option; valid: "
                                          r"experiment, uri"):
        config(deap, tmp_path, tracking={"url": "x"})
    (tmp_path / "file").write_text("")
    cfg = config(deap, tmp_path, track="mlflow", tracking={"uri": str(tmp_path / "file")})
    if importlib.util.find_spec("mlflow") is not None:
        with pytest.raises(ConfigError, match="option 'tracking.uri': .* which is a file"):
            run_experiment(cfg, out=tmp_path / "run")
    import affectlab.tracking

    monkeypatch.setattr(affectlab.tracking, "mlflow_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"MLflow is not installed: pip install "
                                          r"'affectlab\[mlflow\]'"):
        run_experiment(load_config({**cfg.model_dump(), "tracking": {}}), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()                   # refused before any work
