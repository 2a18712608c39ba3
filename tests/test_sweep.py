"""Sweeps: grid parsing, one run per grid point, ranking by validation, resumption, failures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from affectlab.errors import ConfigError
from affectlab.sweep import SweepFailed, grid_points, parse_grid, point_name, run_sweep

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
    assert table["val_balanced_accuracy"].is_monotonic_decreasing
    assert list(table["rank"]) == [1, 2] and table["complete"].all()
    for row in table.itertuples():
        summary = json.loads((out / row.run / "summary.json").read_text())
        assert row.val_balanced_accuracy == summary["val_metrics"]["balanced_accuracy"]["mean"]
        assert row.test_balanced_accuracy == summary["metrics"]["balanced_accuracy"]["mean"]
        fold = json.loads((out / row.run / "folds" / "000" / "metrics.json").read_text())
        assert fold["val_metrics"]["n_test"] == fold["n_val"] > 0
    assert (out / "method.C=0.0001" / "config.yaml").exists()
    assert pd.read_csv(out / "sweep.csv")["run"].tolist() == table["run"].tolist()
    text = (out / "sweep.md").read_text()
    assert "Ranked by **validation** balanced_accuracy" in text and "never used to rank" in text
    stamp = (out / "method.C=1" / "folds" / "002" / "metrics.json").stat().st_mtime_ns
    again, _ = run_sweep(base(deap, tmp_path), GRID, tmp_path / "sweep")
    assert (out / "method.C=1" / "folds" / "002" / "metrics.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, table)


def test_failing_fold_in_a_sweep_is_reported(deap, tmp_path):
    out = tmp_path / "sweep"
    (out / "method.C=1" / "folds" / "001" / "predictions.csv").mkdir(parents=True)
    with pytest.raises(SweepFailed, match="method.C=1 fold 1") as err:
        run_sweep(base(deap, tmp_path), ["method.C=1,10"], out)
    table = err.value.table.set_index("run")
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
    bad = CliRunner().invoke(app, ["sweep", "--method", "logreg", "--dataset", "deap",
                                   "--root", str(deap), "--grid", "seed=0", "--rank-by", "x"])
    assert isinstance(bad.exception, ConfigError) and "--rank-by" in str(bad.exception)
