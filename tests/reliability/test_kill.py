"""kill -9 at several points of a run: the resumed run ends with the per-fold metrics and the
predictions of an uninterrupted run, and never redoes a finished fold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _args(deap: Path, cache: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "affectlab.cli.__main__", "run", "--method", "mlp",
            "--dataset", "deap", "--root", str(deap), "--protocol", "loso",
            "--method-preset", "fast", "--preset", "m2s", "--set", f"cache_dir={cache}",
            "--set", "method.epochs=30", "--set", "method.patience=30", "--out", str(out)]


def _finished(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "folds").glob("*/metrics.json")}


def _results(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folds = pd.concat(pd.read_json(p, typ="series").to_frame().T
                      for p in sorted((out / "folds").glob("*/metrics.json")))
    predictions = pd.concat(pd.read_csv(p) for p in sorted((out / "folds").glob(
        "*/predictions.csv")))
    return folds.reset_index(drop=True), predictions.reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(deap, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("kill")
    out = base / "whole"
    subprocess.run(_args(deap, base / "cache", out), check=True, env=ENV, capture_output=True)
    return base, out


@pytest.mark.parametrize("point", ["before the first fold ends", "after the second fold"])
def test_kill_9_then_resume_gives_the_uninterrupted_results(deap, uninterrupted, point):
    base, whole = uninterrupted
    out = base / point.replace(" ", "-")
    proc = subprocess.Popen(_args(deap, base / "cache", out), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wanted = 0 if point.startswith("before") else 2
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        ready = (out / "config.yaml").exists() if wanted == 0 else len(_finished(out)) >= 2
        if ready:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    before = _finished(out)
    assert len(before) < 3
    resumed = subprocess.run(_args(deap, base / "cache", out), env=ENV, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = _finished(out)
    assert all(after[name] == stamp for name, stamp in before.items())   # not redone
    folds, predictions = _results(out)
    whole_folds, whole_predictions = _results(whole)
    metrics = [c for c in whole_folds.columns if c not in ("seconds", "fit_seconds",
                                                            "predict_seconds")]
    pd.testing.assert_frame_equal(folds[metrics], whole_folds[metrics])
    pd.testing.assert_frame_equal(predictions, whole_predictions)
