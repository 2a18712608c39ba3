"""Linear probe of a self-supervised stage: scoring, missing windows, arms, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectlab.errors import ConfigError
from affectlab.probe import linear_probe, probe_accuracy
from affectlab.run import load_config, plan_run

torch.set_num_threads(1)


def test_probe_accuracy_scores_every_test_window():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    features = rng.normal(size=(40, 3)) + 3 * y[:, None]
    assert probe_accuracy(features[:30], y[:30], features[30:], y[30:]) == 1.0
    noise = rng.normal(size=(40, 3))
    assert probe_accuracy(noise[:30], y[:30], noise[30:], y[30:]) < 0.9
    # a window that cannot be encoded counts, as the training majority class
    features[30:] = np.nan
    assert probe_accuracy(features[:30], y[:30], features[30:], y[30:]) == 0.5


def _plan(root, tmp_path, method: str, protocol: str = "subject_dependent"):
    return plan_run(load_config({
        "method": method, "dataset": "seed_iv", "root": str(root), "protocol": protocol,
        "method_preset": "fast", "seed": 0, "cache_dir": str(tmp_path / "cache"),
        "options": {"method": {"epochs": 2} if method == "m2s" else {}}}))


def test_linear_probe_compares_pretrained_with_random_init(synthetic_root, tmp_path):
    result = linear_probe(_plan(synthetic_root("seed_iv", n_subjects=2), tmp_path, "m2s"),
                          max_folds=2)
    assert result["method"] == "m2s" and len(result["folds"]) == 2
    for arm in ("pretrained", "random_init"):
        assert len(result[arm]["per_fold"]) == 2
        assert all(0.0 <= v <= 1.0 for v in result[arm]["per_fold"])
    assert result["gain"] == pytest.approx(result["pretrained"]["mean"]
                                           - result["random_init"]["mean"], abs=1e-4)


def test_linear_probe_refuses_methods_without_a_self_supervised_stage(synthetic_root,
                                                                      tmp_path):
    with pytest.raises(ConfigError, match="no self-supervised stage"):
        linear_probe(_plan(synthetic_root("seed_iv", n_subjects=2), tmp_path, "logreg"))
