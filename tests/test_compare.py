"""``affectlab compare``: paired per-subject tests between runs, checked against scipy on the
runs' own predictions, and the refusal of runs that are not paired."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

from affectlab.errors import AffectlabError
from affectlab.report import compare_runs
from affectlab.run import load_config, run_experiment


def config(root, tmp_path, **extra):
    raw = {"method": "logreg", "dataset": "deap", "root": str(root), "protocol": "loso",
           "method_preset": "fast", "cache_dir": str(tmp_path / "cache"), "preset": "m2s"}
    raw.update(extra)
    return load_config(raw)


def subject_scores(run_dir) -> pd.Series:
    """Balanced accuracy per subject, from the run's predictions.csv files."""
    table = pd.concat(pd.read_csv(f) for f in sorted(run_dir.glob("folds/*/predictions.csv")))
    return table.groupby("subject").apply(
        lambda rows: balanced_accuracy_score(rows["y_true"], rows["y_pred"]))


def holm_reference(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[j]))
        out[j] = running
    return out


@pytest.fixture(scope="module")
def three_runs(synthetic_root, tmp_path_factory):
    root = synthetic_root("deap", n_subjects=5, seconds=4)
    tmp = tmp_path_factory.mktemp("compare")
    return [run_experiment(config(root, tmp, options={"method": {"C": c}}),
                           out=tmp / f"C{c}")[1] for c in (0.001, 0.1, 10.0)]


def test_p_values_match_scipy_on_the_runs_predictions(three_runs, tmp_path):
    from affectlab.cli import app, compare, experiment  # noqa: F401  (registers commands)

    result = CliRunner().invoke(app, ["compare", *map(str, three_runs), "--out",
                                      str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "p Wilcoxon (Holm)" in result.output
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert written["unit"] == "subjects" and written["units"] == ["1", "2", "3", "4", "5"]
    scores = {d.name: subject_scores(d).to_numpy() for d in three_runs}
    pairs = list(combinations(scores, 2))
    assert [(p["run_a"], p["run_b"]) for p in written["pairs"]] == pairs
    wilcoxon, permutation = [], []
    for (a, b), pair in zip(pairs, written["pairs"], strict=True):
        x, y = scores[a], scores[b]
        assert pair["n"] == 5 and pair["mean_difference"] == pytest.approx(np.mean(x - y))
        wilcoxon.append(sps.wilcoxon(x, y).pvalue if np.any(x != y) else 1.0)
        permutation.append(sps.permutation_test(
            (x, y), lambda u, v, axis: np.mean(u - v, axis=axis), vectorized=True,
            permutation_type="samples", n_resamples=np.inf).pvalue)   # exact: 2**5 flips
        assert pair["p_wilcoxon"] == pytest.approx(wilcoxon[-1])
        assert pair["p_permutation"] == pytest.approx(permutation[-1])
    assert [p["p_wilcoxon_holm"] for p in written["pairs"]] == pytest.approx(
        holm_reference(wilcoxon))
    assert [p["p_permutation_holm"] for p in written["pairs"]] == pytest.approx(
        holm_reference(permutation))
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert len(table) == 3 and pd.api.types.is_float_dtype(table["p_wilcoxon_holm"])
    assert table["mean_difference"].abs().max() > 0          # the C values change the scores


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


@pytest.mark.parametrize(("other", "message"), [
    ({"protocol": "subject_kfold", "max_folds": 1}, r"their protocols differ \(loso vs "
                                                    r"subject_kfold\)"),
    ({"max_folds": 2}, "their fold names differ"),
])
def test_runs_that_are_not_paired_are_refused(deap, tmp_path, other, message):
    _, first = run_experiment(config(deap, tmp_path, max_folds=1), out=tmp_path / "a")
    _, second = run_experiment(config(deap, tmp_path, **other), out=tmp_path / "b")
    with pytest.raises(AffectlabError, match=message) as error:
        compare_runs([first, second])
    assert "\n" not in str(error.value)
    with pytest.raises(AffectlabError, match="at least two"):
        compare_runs([first])
