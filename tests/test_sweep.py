"""Sweeps: grid parsing, one run per grid point, one row per configuration (seeds aggregated),
ranking by validation, validation by subject under LOSO, resumption, failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from affectlab.errors import ConfigError
from affectlab.sweep import (
    SweepFailed,
    config_name,
    config_table,
    grid_points,
    parse_grid,
    point_name,
    run_sweep,
)

GRID = ["method.C=0.0001,1"]


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def base(deap, tmp_path) -> dict:
    return {"method": "logreg", "dataset": "deap", "root": str(deap), "protocol": "loso",
            "method_preset": "fast", "preset": "m2s", "cache_dir": str(tmp_path / "cache")}


def test_grid_parsing_and_names():
    grid = parse_grid(["method.C=0.1,1", "protocol.modalities=[eeg,eye],[eeg]", "seed=0"])
    assert grid["protocol.modalities"] == ["[eeg,eye]", "[eeg]"]
    points = grid_points(grid)
    assert len(points) == 4 and points[1] == {"method.C": "0.1",
                                              "protocol.modalities": "[eeg]", "seed": "0"}
    assert point_name(points[0]) == "method.C=0.1_protocol.modalities=-eeg-eye-_seed=0"
    for bad in (["method.C"], ["method.C=1,,2"], ["seed=1,1"], ["seed=1", "seed=2"], []):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid(bad)


def test_sweep_ranks_by_validation_and_resumes(deap, tmp_path):
    table, out = run_sweep(base(deap, tmp_path), GRID, tmp_path / "sweep")
    assert table["val_balanced_accuracy_mean"].is_monotonic_decreasing
    assert list(table["rank"]) == [1, 2] and table["complete"].all()
    assert list(table["n_seeds"]) == [1, 1] and table["val_balanced_accuracy_std"].isna().all()
    for row in table.itertuples():
        assert row.runs == row.config                   # no seed in the grid: one run each
        summary = json.loads((out / row.runs / "summary.json").read_text())
        assert row.val_balanced_accuracy_mean == \
            summary["val_metrics"]["balanced_accuracy"]["mean"]
        assert row.test_balanced_accuracy_mean == summary["metrics"]["balanced_accuracy"]["mean"]
        assert summary["validation"]["by"] == "subject"      # loso: validation subjects
        for k, fold_name in enumerate(summary["fold_names"]):
            fold = json.loads((out / row.runs / "folds" / f"{k:03d}" / "metrics.json")
                              .read_text())
            assert fold["val_metrics"]["n_test"] == fold["n_val"] > 0
            assert fold["info"]["val_subjects"] == summary["validation"]["subjects"][fold_name]
            assert fold["info"]["subject"] not in fold["info"]["val_subjects"]
    assert (out / "method.C=0.0001" / "config.yaml").exists()
    assert pd.read_csv(out / "sweep.csv")["config"].tolist() == table["config"].tolist()
    assert len(pd.read_csv(out / "sweep_runs.csv")) == 2
    text = (out / "sweep.md").read_text()
    assert "Ranked by the **validation** balanced_accuracy" in text
    assert "never used to rank" in text and "## Per seed" in text
    stamp = (out / "method.C=1" / "folds" / "002" / "metrics.json").stat().st_mtime_ns
    again, _ = run_sweep(base(deap, tmp_path), GRID, tmp_path / "sweep")
    assert (out / "method.C=1" / "folds" / "002" / "metrics.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, table)


def test_one_row_per_configuration_with_seeds_aggregated(deap, tmp_path):
    table, out = run_sweep(base(deap, tmp_path), [*GRID, "seed=0,1"], tmp_path / "sweep")
    assert sorted(table["config"]) == ["method.C=0.0001", "method.C=1"]
    assert "seed" not in table.columns and list(table["n_seeds"]) == [2, 2]
    per_run = pd.read_csv(out / "sweep_runs.csv")
    assert len(per_run) == 4 and set(per_run["config"]) == set(table["config"])
    for row in table.itertuples():
        runs = per_run[per_run["config"] == row.config]
        assert row.seeds == "seed=0;seed=1" and row.runs == ";".join(runs["run"])
        for part in ("val", "test"):
            values = [json.loads((out / name / "summary.json").read_text())[
                "val_metrics" if part == "val" else "metrics"]["balanced_accuracy"]["mean"]
                for name in runs["run"]]
            assert getattr(row, f"{part}_balanced_accuracy_mean") == pytest.approx(
                np.mean(values))
            assert getattr(row, f"{part}_balanced_accuracy_std") == pytest.approx(
                np.std(values))
            assert [float(v) for v in getattr(row, f"{part}_balanced_accuracy_per_seed")
                    .split(";")] == pytest.approx(values)
        assert row.folds == row.n_folds == 6 and row.val_by == "subject"
    saved = pd.read_csv(out / "sweep.csv")
    for column in ("rank", "n_seeds", "val_balanced_accuracy_mean", "val_balanced_accuracy_std",
                   "test_balanced_accuracy_mean", "folds", "n_folds"):
        assert pd.api.types.is_numeric_dtype(saved[column]), column
    assert "# Sweep: 2 configuration(s), 4 run(s)" in (out / "sweep.md").read_text()


def test_configurations_are_ranked_by_validation_never_by_test():
    per_run = pd.DataFrame({
        "config": ["a", "a", "b", "b", "c"], "run": ["a_s0", "a_s1", "b_s0", "b_s1", "c_s0"],
        "method.C": ["1", "1", "2", "2", "3"], "seed": ["0", "1", "0", "1", "0"],
        "seed_label": ["seed=0", "seed=1", "seed=0", "seed=1", "seed=0"],
        "val_f1_macro": [0.6, 0.8, 0.65, 0.65, np.nan],
        "val_f1_macro_std": [0.1] * 5, "test_f1_macro": [0.9, 0.9, 0.2, 0.2, 0.99],
        "test_f1_macro_std": [0.1] * 5, "folds": [3, 3, 3, 3, 0], "n_folds": [3] * 5,
        "complete": [True, True, True, True, False], "leaky": [False] * 5,
        "val_by": ["subject"] * 5, "run_dir": ["x"] * 5})
    table = config_table(per_run, "f1_macro", ["method.C", "seed"])
    assert list(table["config"]) == ["a", "b", "c"]      # val 0.70 > 0.65 > none; test ignored
    assert table["val_f1_macro_mean"].iloc[0] == pytest.approx(0.7)
    assert table["val_f1_macro_std"].iloc[0] == pytest.approx(0.1)
    assert list(table["n_seeds"]) == [2, 2, 0] and not table["complete"].iloc[2]
    ece = per_run.rename(columns=lambda c: c.replace("f1_macro", "ece"))
    assert list(config_table(ece, "ece", ["method.C", "seed"])["config"]) == ["b", "a", "c"]
    assert config_name({"method.C": "1", "seed": "0", "protocol.seed": "2"}) == "method.C=1"
    assert config_name({"seed": "0"}) == "base"


def test_validation_by_trial_under_loso_is_flagged(deap, tmp_path):
    raw = {**base(deap, tmp_path), "options": {"protocol": {"val_by": "trial"}}}
    table, out = run_sweep(raw, ["method.C=1"], tmp_path / "sweep")
    assert list(table["val_by"]) == ["trial"]
    summary = json.loads((out / "method.C=1" / "summary.json").read_text())
    assert summary["validation"]["by"] == "trial" and "subjects" not in summary["validation"]
    assert summary["config"]["options"]["protocol"]["val_by"] == "trial"
    assert "Validation by trial under a cross-subject protocol" in (out / "sweep.md").read_text()


def test_failing_fold_in_a_sweep_is_reported(deap, tmp_path):
    out = tmp_path / "sweep"
    (out / "method.C=1" / "folds" / "001" / "predictions.csv").mkdir(parents=True)
    with pytest.raises(SweepFailed, match="method.C=1 fold 1") as err:
        run_sweep(base(deap, tmp_path), ["method.C=1,10"], out)
    table = err.value.table.set_index("config")
    assert not table.loc["method.C=1", "complete"] and table.loc["method.C=1", "folds"] == 2
    assert table.loc["method.C=10", "complete"]
    assert "IsADirectoryError" in (out / "method.C=1" / "folds" / "001" / "error.txt").read_text()
    assert "(INCOMPLETE)" in (out / "sweep.md").read_text()


def test_cli_sweep(deap, tmp_path):
    from affectlab.cli import app, sweep  # noqa: F401

    result = CliRunner().invoke(app, [
        "sweep", "--method", "logreg", "--dataset", "deap", "--root", str(deap), "--protocol",
        "loso", "--method-preset", "fast", "--preset", "m2s", "--grid", "method.C=0.5",
        "--grid", "seed=0,1", "--rank-by", "f1_macro", "--out", str(tmp_path / "s"),
        "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "protocol.val_fraction=0.3"])
    assert result.exit_code == 0, result.output
    assert "validation** f1_macro" in result.output
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir()) == [
        "method.C=0.5_seed=0", "method.C=0.5_seed=1"]
    table = pd.read_csv(tmp_path / "s" / "sweep.csv")
    assert table["config"].tolist() == ["method.C=0.5"] and table["n_seeds"].tolist() == [2]
    bad = CliRunner().invoke(app, ["sweep", "--method", "logreg", "--dataset", "deap",
                                   "--root", str(deap), "--grid", "seed=0", "--rank-by", "x"])
    assert isinstance(bad.exception, ConfigError) and "--rank-by" in str(bad.exception)
