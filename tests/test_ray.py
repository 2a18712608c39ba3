"""The Ray executor on one local Ray instance (2 CPUs) shared by this module's tests."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys

import pytest

from affectlab.errors import ConfigError
from affectlab.executors import create_executor
from affectlab.run import execute, load_config, plan_run, prepare_run_dir, run_experiment

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# One Ray instance for the module: keep its tests on one xdist worker (make test: loadgroup).
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


@pytest.fixture(scope="module")
def ray_instance():
    """Started once; the executor finds it connected, uses it and leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def raw_config(deap, tmp_path, **extra) -> dict:
    raw = {"method": "logreg", "dataset": "deap", "root": str(deap), "protocol": "loso",
           "method_preset": "fast", "preset": "m2s", "cache_dir": str(tmp_path / "cache")}
    return {**raw, **extra}


@pytest.mark.ray
def test_ray_run_equals_local(deap, tmp_path, ray_instance):
    cfg = load_config(raw_config(deap, tmp_path))
    local, _ = run_experiment(cfg, out=tmp_path / "local")
    remote, run_dir = run_experiment(cfg, out=tmp_path / "ray", executor="ray")
    assert remote["n_folds"] == 3 and remote["complete"]
    assert remote["metrics"] == local["metrics"]
    assert remote["val_metrics"] == local["val_metrics"]
    assert ray_instance.is_initialized()            # not ours to shut down


@pytest.mark.ray
def test_ship_data_needs_no_cache_on_workers(deap, tmp_path, ray_instance):
    cfg = load_config(raw_config(deap, tmp_path, seed=3))
    plan = plan_run(cfg)
    run_dir = prepare_run_dir(plan, tmp_path / "shipped")
    shutil.rmtree(tmp_path / "cache")
    summary = execute(plan, run_dir, executor="ray", ship_data=True)
    assert summary["complete"] and summary["n_folds"] == 3
    assert not (tmp_path / "cache").exists()        # no worker read or rebuilt the cache
    local, _ = run_experiment(cfg, out=tmp_path / "local")
    assert summary["metrics"] == local["metrics"]


@pytest.mark.ray
def test_failing_fold_is_retried_reported_and_resumed(deap, tmp_path, ray_instance,
                                                       monkeypatch, capsys):
    from affectlab.cli import main

    out = tmp_path / "flaky"
    blocker = out / "folds" / "001" / "predictions.csv"     # a folder: writing the fold fails
    blocker.mkdir(parents=True)
    args = ["affectlab", "run", "--method", "logreg", "--dataset", "deap", "--root", str(deap),
            "--protocol", "loso", "--method-preset", "fast", "--preset", "m2s", "--out",
            str(out), "--set", f"cache_dir={tmp_path / 'cache'}", "--executor", "ray", "--json"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "1 of 3 fold(s) failed after a retry" in err
    assert "fold 1 (subj2): IsADirectoryError" in err
    trace = (out / "folds" / "001" / "error.txt").read_text()
    assert trace.startswith("Traceback") and "IsADirectoryError" in trace
    assert "failed; retrying" in (out / "run.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_folds"] == 2
    assert summary["failed_folds"][0]["fold"] == "subj2"
    assert {p.parent.name for p in out.glob("folds/*/metrics.json")} == {"000", "002"}
    shutil.rmtree(blocker)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["complete"] is True


@pytest.mark.ray
def test_sweep_on_ray_ranks_by_validation(deap, tmp_path, ray_instance):
    from affectlab.sweep import run_sweep

    table, out = run_sweep(raw_config(deap, tmp_path), ["method.C=0.0001,1"], tmp_path / "s",
                           executor="ray")
    assert table["complete"].all()
    assert table["val_balanced_accuracy_mean"].is_monotonic_decreasing
    local, _ = run_experiment(load_config(raw_config(deap, tmp_path,
                                                     options={"method": {"C": 1}})),
                              out=tmp_path / "local")
    row = table.set_index("config").loc["method.C=1"]        # one seed: its run's values
    assert row["test_balanced_accuracy_mean"] == local["metrics"]["balanced_accuracy"]["mean"]
    assert row["val_balanced_accuracy_mean"] == local["val_metrics"]["balanced_accuracy"]["mean"]


def test_ray_resources_are_validated(deap, tmp_path):
    with pytest.raises(ConfigError, match="resources.gpus_per_task"):
        load_config(raw_config(deap, tmp_path, resources={"gpus_per_task": -1}))
    cfg = load_config(raw_config(deap, tmp_path, resources={"gpus_per_task": 0.5}))
    assert cfg.resources.gpus_per_task == 0.5


def test_missing_ray_is_a_clear_error(deap, monkeypatch):
    from typer.testing import CliRunner

    from affectlab.cli import app, experiment  # noqa: F401

    monkeypatch.setitem(sys.modules, "ray", None)           # `import ray` now fails
    with pytest.raises(ConfigError, match=r"pip install affectlab\[ray\]"):
        create_executor("ray")
    result = CliRunner().invoke(app, ["run", "--method", "logreg", "--dataset", "deap",
                                      "--root", str(deap), "--executor", "ray"])
    assert isinstance(result.exception, ConfigError)
    assert "pip install affectlab[ray]" in str(result.exception)
    with pytest.raises(ConfigError, match="--ray-address.*only to --executor ray"):
        experiment.executor_options("local", "auto", False)


def test_tasks_sent_to_workers_are_portable(tmp_path, monkeypatch):
    from affectlab.executors import FoldTask
    from affectlab.ray_executor import portable

    monkeypatch.chdir(tmp_path)
    config = load_config({"method": "logreg", "dataset": "deap", "root": "data"}).model_dump()
    sent = portable(FoldTask(config, 1, "runs/x/folds/001"))
    assert sent.config["root"] == str(tmp_path.resolve() / "data")
    assert sent.fold_dir == str(tmp_path.resolve() / "runs" / "x" / "folds" / "001")
    assert os.path.isabs(sent.config["cache_dir"])
    assert sent.config["device"] == "cpu"              # asked for no GPU
    config["resources"]["gpus_per_task"] = 0.5
    assert portable(FoldTask(config, 1, "f")).config["device"] == "auto"
