"""Statistics in the summaries (chance levels, bootstrap intervals), the numeric
comparison.csv, the predictions' fold column and each fold's history.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from affectlab import stats
from affectlab.run import plan_run, run_experiment, run_fold
from run_helpers import config


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def test_holm_step_down():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])      # capped at 1


def test_chance_levels_of_skewed_labels():
    levels = stats.chance_levels(np.array([0, 0, 0, 1]), n_classes=2)
    assert levels["accuracy"] == {"majority": 0.75, "uniform": 0.5}
    assert levels["balanced_accuracy"] == {"majority": 0.5, "uniform": 0.5}
    assert levels["f1_macro"]["majority"] == pytest.approx(2 * 0.75 / 1.75 / 2)
    three = stats.chance_levels(np.array([0, 1, 2, 2]), n_classes=3)
    assert three["balanced_accuracy"]["majority"] == pytest.approx(1 / 3)
    assert three["accuracy"]["uniform"] == pytest.approx(1 / 3)


def test_bootstrap_interval_edge_cases():
    assert stats.bootstrap_ci([0.7]) == (None, None, "none")
    assert stats.bootstrap_ci([0.6, 0.6, 0.6]) == (0.6, 0.6, "constant")
    low, high, method = stats.bootstrap_ci([0.55, 0.62, 0.71, 0.80, 0.66])
    assert method == "BCa" and 0.55 <= low < np.mean([0.55, 0.62, 0.71, 0.80, 0.66]) < high


def test_paired_statistics_match_scipy():
    a = np.array([0.70, 0.81, 0.66, 0.90, 0.75, 0.62, 0.88])
    b = np.array([0.61, 0.79, 0.67, 0.80, 0.70, 0.55, 0.86])
    result = stats.paired_test(a, b)
    assert result["p_wilcoxon"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    exact = sps.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                                 permutation_type="samples", vectorized=True,
                                 n_resamples=np.inf)
    assert result["p_permutation"] == pytest.approx(exact.pvalue)     # 2**7 < resamples: exact
    d = a - b
    assert result["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    ranks = sps.rankdata(np.abs(d))                                 # one negative difference
    assert result["rank_biserial"] == pytest.approx(1 - 2 * ranks[d < 0].sum() / ranks.sum())
    assert stats.paired_test(a, a)["p_wilcoxon"] == 1.0


def test_summary_has_chance_levels_and_subject_intervals(deap, tmp_path):
    summary, run_dir = run_experiment(config(deap, tmp_path), out=tmp_path / "run")
    predictions = pd.concat(pd.read_csv(run_dir / "folds" / f"{k:03d}" / "predictions.csv")
                            for k in range(3))
    majority = predictions.groupby("fold")["y_true"].agg(
        lambda y: y.value_counts(normalize=True).max()).mean()
    assert summary["chance"]["accuracy"] == {"majority": pytest.approx(majority),
                                             "uniform": 0.5}
    assert summary["chance"]["balanced_accuracy"]["majority"] == 0.5
    assert sum(summary["test_labels"].values()) == len(predictions)

    ci = summary["ci"]["balanced_accuracy"]
    values = [summary["per_subject"][s]["balanced_accuracy"] for s in ("1", "2", "3")]
    expected = sps.bootstrap((np.array(values),), np.mean, n_resamples=stats.N_RESAMPLES,
                             method="BCa", rng=np.random.default_rng(stats.SEED))
    assert ci["unit"] == "subjects" and ci["n"] == 3
    assert ci["mean"] == pytest.approx(np.mean(values))
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx(tuple(expected.confidence_interval))
    assert ci["ci_low"] < ci["mean"] < ci["ci_high"]
    assert summary["ci"]["kappa"]["unit"] == "folds"           # no per-subject kappa
    text = (run_dir / "summary.md").read_text()
    assert "95 % CI [" in text and "chance: majority" in text


def test_comparison_csv_is_numeric(deap, tmp_path):
    from affectlab.report import write_report

    _, run_dir = run_experiment(config(deap, tmp_path), out=tmp_path / "run")
    write_report([run_dir], tmp_path / "rep")
    table = pd.read_csv(tmp_path / "rep" / "comparison.csv")
    for column in ("mean", "std", "ci_low", "ci_high", "n_folds", "n_subjects"):
        assert pd.api.types.is_numeric_dtype(table[column]), column
    row = table.set_index("metric").loc["balanced_accuracy"]
    assert row["n_folds"] == 3 and row["n_subjects"] == 3
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert "±" in (tmp_path / "rep" / "comparison.md").read_text()     # pretty in Markdown


def test_fold_column_and_epoch_history(deap, tmp_path):
    cfg = config(deap, tmp_path, method="mlp", max_folds=2,
                 options={"protocol": {"val_fraction": 0.2}})
    plan = plan_run(cfg)
    reported = []
    fold_dir = tmp_path / "fold"
    run_fold(plan, 1, fold_dir, on_epoch=lambda e, n, logs: reported.append((e, n, logs)))
    history = pd.read_csv(fold_dir / "history.csv")
    assert reported, "mlp reports its epochs"
    assert history["epoch"].tolist() == [e + 1 for e, _, _ in reported]
    assert history["n_epochs"].tolist() == [n for _, n, _ in reported]
    assert history["val_loss"].to_numpy() == pytest.approx([x["val_loss"] for *_, x in reported])
    table = pd.read_csv(fold_dir / "predictions.csv")
    assert set(table["fold"]) == {plan.folds[1].name} and set(table["fold_index"]) == {1}

    _, run_dir = run_experiment(cfg, out=tmp_path / "run")
    for k in range(2):
        assert (run_dir / "folds" / f"{k:03d}" / "history.csv").exists()
        table = pd.read_csv(run_dir / "folds" / f"{k:03d}" / "predictions.csv")
        assert list(table.columns[:2]) == ["fold", "fold_index"]
        assert set(table["fold"]) == {f"subj{k + 1}"} and set(table["fold_index"]) == {k}


def test_embeddings_are_saved_in_the_order_of_the_predictions(deap, tmp_path, monkeypatch):
    plan = plan_run(config(deap, tmp_path, max_folds=1))
    run_fold(plan, 0, tmp_path / "plain")
    assert not (tmp_path / "plain" / "embeddings.npy").exists()    # logreg returns none
    original = plan.method_cls.predict

    def predict(self, test):
        predictions = original(self, test)
        predictions.embeddings = np.arange(3 * len(test), dtype=float).reshape(-1, 3)
        return predictions

    monkeypatch.setattr(plan.method_cls, "predict", predict)
    run_fold(plan, 0, tmp_path / "fold")
    embeddings = np.load(tmp_path / "fold" / "embeddings.npy")
    table = pd.read_csv(tmp_path / "fold" / "predictions.csv")
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(table), 3)
    assert np.array_equal(embeddings[:, 0], 3 * np.arange(len(table)))


def test_predictions_of_older_runs_get_their_fold(deap, tmp_path):
    from affectlab.report import load_predictions

    _, run_dir = run_experiment(config(deap, tmp_path, max_folds=2), out=tmp_path / "run")
    path = run_dir / "folds" / "001" / "predictions.csv"
    pd.read_csv(path).drop(columns=["fold", "fold_index"]).to_csv(path, index=False)
    table = load_predictions(run_dir)
    assert table.groupby("fold_index")["fold"].unique().map(list).to_dict() == {
        0: ["subj1"], 1: ["subj2"]}
