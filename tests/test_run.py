"""The runner: summary fields, resumption (also after a kill), config errors, CLI commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from affectlab.errors import ConfigError, ProtocolError, UnknownNameError
from affectlab.run import apply_overrides, load_config, run_experiment
from run_helpers import config

SUMMARY_FIELDS = {"method", "dataset", "protocol", "label_scheme", "leaky", "transductive",
                  "n_folds", "metrics", "seed", "config", "version"}


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def test_summary_fields_and_files(deap, tmp_path):
    summary, run_dir = run_experiment(config(deap, tmp_path), out=tmp_path / "run")
    assert SUMMARY_FIELDS <= set(summary)
    assert summary["n_folds"] == 3 and summary["leaky"] is False
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "kappa"):
        entry = summary["metrics"][name]
        assert set(entry) == {"mean", "std", "per_fold"} and len(entry["per_fold"]) == 3
    assert summary["metrics"]["balanced_accuracy"]["mean"] > 0.55     # the synthetic effect
    assert set(summary["per_subject"]) == {"1", "2", "3"}
    for k in range(3):
        assert (run_dir / "folds" / f"{k:03d}" / "metrics.json").exists()
        assert (run_dir / "folds" / f"{k:03d}" / "predictions.csv").exists()
    assert (run_dir / "summary.md").read_text().startswith("# logreg on deap")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["method"] == "logreg"
    assert "fold 2" in (run_dir / "run.log").read_text()


def test_rerun_skips_finished_folds(deap, tmp_path):
    cfg = config(deap, tmp_path)
    first, run_dir = run_experiment(cfg, out=tmp_path / "run")
    stamps = {k: (run_dir / "folds" / f"{k:03d}" / "metrics.json").stat().st_mtime_ns
              for k in range(3)}
    (run_dir / "folds" / "001" / "metrics.json").unlink()
    second, _ = run_experiment(cfg, out=tmp_path / "run")
    assert (run_dir / "folds" / "000" / "metrics.json").stat().st_mtime_ns == stamps[0]
    assert (run_dir / "folds" / "002" / "metrics.json").stat().st_mtime_ns == stamps[2]
    assert second["metrics"] == first["metrics"]


def test_killed_run_resumes_without_redoing_folds(deap, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "affectlab.cli.__main__", "run", "--method", "mlp",
            "--dataset", "deap", "--root", str(deap), "--protocol", "subject_dependent",
            "--method-preset", "fast", "--out", str(out), "--set", "protocol.n_splits=2",
            "--preset", "m2s",
            "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "method.epochs=40",
            "--set", "method.patience=40", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    first = out / "folds" / "000" / "metrics.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    stamp = first.stat().st_mtime_ns
    done_before = sorted(p.parent.name for p in (out / "folds").glob("*/metrics.json"))
    resumed = subprocess.run(args, capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert first.stat().st_mtime_ns == stamp
    log = (out / "run.log").read_text()
    for name in done_before:
        assert f"fold {int(name)} (" in log and "already finished: skipped" in log
    fresh = subprocess.run([*args[:args.index("--out") + 1], str(tmp_path / "fresh"),
                            *args[args.index("--out") + 2:]], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert json.loads(resumed.stdout)["metrics"] == json.loads(fresh.stdout)["metrics"]


def test_different_config_into_same_directory_is_refused(deap, tmp_path):
    run_experiment(config(deap, tmp_path), out=tmp_path / "run")
    with pytest.raises(ConfigError, match="different config"):
        run_experiment(config(deap, tmp_path, seed=5), out=tmp_path / "run")
    summary, _ = run_experiment(config(deap, tmp_path, seed=5), out=tmp_path / "run",
                                overwrite=True)
    assert summary["seed"] == 5


def test_bad_names_and_options(deap, tmp_path):
    with pytest.raises(UnknownNameError, match="logreg"):
        run_experiment(config(deap, tmp_path, method="nope"), out=tmp_path / "a")
    with pytest.raises(UnknownNameError, match="loso"):
        run_experiment(config(deap, tmp_path, protocol="nope"), out=tmp_path / "b")
    with pytest.raises(UnknownNameError, match="quadrant"):
        run_experiment(config(deap, tmp_path, labels={"scheme": "nope"}), out=tmp_path / "c")
    with pytest.raises(ConfigError, match="method.C"):
        run_experiment(config(deap, tmp_path, options={"method": {"C": -1}}), out=tmp_path / "d")
    with pytest.raises(ConfigError, match="method.epochs.: unknown option; valid: C, "
                                          "class_weight, max_iter"):
        run_experiment(config(deap, tmp_path, options={"method": {"epochs": 3}}),
                       out=tmp_path / "e")
    with pytest.raises(ProtocolError, match="cross_session needs at least 2 sessions"):
        run_experiment(config(deap, tmp_path, protocol="cross_session"), out=tmp_path / "f")
    with pytest.raises(ConfigError, match="epochs.: unknown option; valid: .*method"):
        load_config({"method": "logreg", "dataset": "deap", "root": "x", "epochs": 3})


def test_set_overrides_parse_yaml_values():
    raw = apply_overrides({"method": "m"}, ["method.epochs=5", "protocol.modalities=[eeg,eye]",
                                            "labels.threshold=4.5", "seed=3",
                                            "data.bandpass=null"])
    assert raw["options"]["method"]["epochs"] == 5
    assert raw["options"]["protocol"]["modalities"] == ["eeg", "eye"]
    assert raw["labels"]["threshold"] == 4.5 and raw["seed"] == 3
    assert raw["options"]["data"]["bandpass"] is None
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["epochs"])


def test_leaky_protocol_is_flagged_everywhere(deap, tmp_path):
    summary, run_dir = run_experiment(config(deap, tmp_path, protocol="random_window",
                                             options={"protocol": {"n_repeats": 2}}),
                                      out=tmp_path / "leaky")
    assert summary["leaky"] is True
    assert "LEAKY" in (run_dir / "summary.md").read_text()
    from affectlab.report import comparison_table

    assert "(LEAKY)" in comparison_table([run_dir])["protocol"][0]


def test_cli_list_info_run_report(deap, tmp_path):
    from affectlab.cli import app, data, demo, experiment  # noqa: F401

    runner = CliRunner()
    listing = runner.invoke(app, ["list"])
    assert listing.exit_code == 0 and "subject_dependent" in listing.output
    info = runner.invoke(app, ["info", "deap", "--root", str(deap), "--json",
                               "--cache-dir", str(tmp_path / "cache")])
    assert info.exit_code == 0, info.output
    result = json.loads(info.output)
    assert result["n_trials"] == 120 and result["sampling_rates"]["eeg"] == 128.0
    assert sum(result["labels"]["binary_valence"].values()) == result["n_windows"]
    assert "native" not in result["labels"]
    run = runner.invoke(app, ["run", "--method", "logreg", "--dataset", "deap", "--root",
                              str(deap), "--protocol", "subject_kfold", "--method-preset",
                              "fast", "--out", str(tmp_path / "r"), "--set",
                              f"cache_dir={tmp_path / 'cache'}", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["protocol"] == "subject_kfold"
    report = runner.invoke(app, ["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "rep" / "comparison.csv").exists()
    assert (tmp_path / "rep" / "plots" / "r_confusion.png").exists()


def test_cli_errors_are_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "affectlab.cli.__main__", "info", "deap",
                           "--root", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_process_executor_gives_the_same_summary(deap, tmp_path):
    cfg = config(deap, tmp_path, method="mlp", protocol="loso")
    local, _ = run_experiment(cfg, out=tmp_path / "local")
    pooled, _ = run_experiment(cfg, out=tmp_path / "pool", executor="process", workers=2)
    assert pooled["metrics"] == local["metrics"]


def test_failing_fold_is_retried_then_reported(deap, tmp_path, monkeypatch):
    from affectlab import run as run_module

    calls: dict[int, int] = {}
    original = run_module.run_fold

    def flaky(plan, k, fold_dir, on_epoch=None):
        calls[k] = calls.get(k, 0) + 1
        if k == 1:
            raise RuntimeError("synthetic failure in fold 1")
        return original(plan, k, fold_dir, on_epoch)

    monkeypatch.setattr(run_module, "run_fold", flaky)
    with pytest.raises(run_module.RunFailed, match=r"1 of 3 fold\(s\) failed(.|\n)*"
                       r"fold 1 \(subj2\): RuntimeError: synthetic failure in fold 1") as err:
        run_experiment(config(deap, tmp_path), out=tmp_path / "flaky")
    assert calls == {0: 1, 1: 2, 2: 1}
    trace = (tmp_path / "flaky" / "folds" / "001" / "error.txt").read_text()
    assert "synthetic failure in fold 1" in trace
    summary = err.value.summary
    assert summary["complete"] is False and summary["n_folds"] == 2
    assert summary["failed_folds"][0]["fold"] == "subj2"
    monkeypatch.setattr(run_module, "run_fold", original)
    fixed, _ = run_experiment(config(deap, tmp_path), out=tmp_path / "flaky")
    assert fixed["complete"] and fixed["n_folds"] == 3
    assert not (tmp_path / "flaky" / "folds" / "001" / "error.txt").exists()


def test_default_options_keep_every_subject(deap, tmp_path):
    raw = {"method": "logreg", "dataset": "deap", "root": str(deap), "protocol": "loso",
           "cache_dir": str(tmp_path / "cache")}
    summary, _ = run_experiment(load_config(raw), out=tmp_path / "run")
    assert summary["label_scheme"] == "binary_valence" and summary["data_preset"] == "default"
    assert summary["n_folds"] == 3 and set(summary["per_subject"]) == {"1", "2", "3"}
    assert summary["dropped"]["windows"] == 0 and summary["dropped"]["subjects"] == []


def test_a_partial_modality_drops_loudly(deap, tmp_path, caplog):
    cfg = config(deap, tmp_path, preset="all",       # 2 subjects left: 1 training subject per
                 options={"protocol": {"val_by": "trial"}})     # fold, no validation subject
    with caplog.at_level("WARNING", logger="affectlab.data"):
        summary, run_dir = run_experiment(cfg, out=tmp_path / "run")
    dropped = summary["dropped"]
    assert dropped["subjects"] == [3]                 # the synthetic s03 has no face video
    assert dropped["by_reason"]["missing_face_au"] == dropped["windows"] > 0
    assert dropped["trials"] == 40 + 1                # and subject 2 lacks one face file
    partial = dropped["subjects_partial"]               # + windows without a tracked frame
    assert set(partial) <= {1, 2} and partial[2] >= 4
    assert dropped["windows"] == 40 * 4 + sum(partial.values())
    assert summary["n_folds"] == 2
    assert "1 subject(s) entirely: 3" in caplog.text
    text = (run_dir / "summary.md").read_text()
    assert "**Subjects dropped**" in text and f"face_au: {dropped['windows']}" in text
    assert "Missing face_au: absent in 41 trial(s)" in text


def test_windows_are_dropped_only_for_modalities_the_method_uses(deap, tmp_path):
    from affectlab.methods import METHODS
    from affectlab.run import plan_run

    base = {"method": "me_mhacl", "dataset": "deap", "root": str(deap), "protocol": "loso",
            "method_preset": "fast", "cache_dir": str(tmp_path / "cache"), "preset": "all",
            "options": {"protocol": {"val_by": "trial"}}}    # 2 subjects left after the drop
    plan = plan_run(load_config({**base, "preset": "all"}).model_copy(
        update={"method": "logreg"}))
    assert plan.losses["by_reason"].get("missing_face_au")
    used = METHODS.get("me_mhacl").used_modalities({"modalities": ["eeg", "gsr"]},
                                                   ["eeg", "gsr", "face_au"])
    assert used == ["eeg", "gsr"]
    clmer = METHODS.get("clmer").used_modalities({"modalities": ["physiology"]},
                                                 ["eeg", "gsr", "face_au", "gaze"])
    assert clmer == ["eeg", "gsr"]


def test_default_labels_fit_the_dataset(synthetic_root, tmp_path):
    root = synthetic_root("seed_iv", n_subjects=3)
    raw = {"method": "logreg", "dataset": "seed_iv", "root": str(root), "protocol": "loso",
           "cache_dir": str(tmp_path / "cache"), "max_folds": 1}
    summary, _ = run_experiment(load_config(raw), out=tmp_path / "run")
    assert summary["label_scheme"] == "native" and len(summary["classes"]) == 4


@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_label_ratio_budget_covers_validation_labels(deap, tmp_path, ratio):
    """Training and validation labels together stay within ``ratio`` of the training pool's
    trials (train + val + unlabelled non-test trials); validation is labelled from that budget."""
    from affectlab.protocols import trial_keys
    from affectlab.run import fold_splits, plan_run

    cfg = config(deap, tmp_path, protocol="label_ratio",
                 options={"protocol": {"ratio": ratio, "n_splits": 2, "val_fraction": 0.3,
                                       "on_missing_class": "train"}})
    plan = plan_run(cfg)
    trials = trial_keys(plan.windows.meta)
    for fold in plan.folds:
        train, unlabeled, val, _ = fold_splits(plan, fold)
        labelled = np.r_[fold.train, fold.val]
        pool = np.r_[labelled, np.setdiff1d(fold.unlabeled, fold.test)]
        n_labelled, n_pool = len(np.unique(trials[labelled])), len(np.unique(trials[pool]))
        assert n_labelled <= ratio * n_pool
        assert len(fold.val) > 0 and val is not None and val.y is not None
        assert set(trials[fold.val]) <= set(trials[labelled])
        assert unlabeled is not None and unlabeled.y is None
        assert not set(trials[pool[len(labelled):]]) & set(trials[labelled])
        assert len(train.y) + len(val.y) == len(labelled)
