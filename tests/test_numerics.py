"""The run options amp, tf32 and deterministic: applied for each fold and restored after it,
declared in the summary, part of a run's identity (amp, tf32) or not (deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from affectlab.errors import ConfigError
from affectlab.methods.baselines import MLPBaseline as MLP
from affectlab.run import apply_overrides, load_config, run_experiment
from affectlab.training import numerics
from run_helpers import config

AMP = "bf16 autocast (amp)"


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def mlp(deap, tmp_path, **extra):
    return config(deap, tmp_path, method="mlp", max_folds=1, **extra)


def files(run_dir) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def test_amp_runs_a_torch_fold_on_cpu_and_is_declared(deap, tmp_path, monkeypatch):
    seen = []
    fit = MLP.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and
                    torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "fit", recording_fit)
    plain, plain_dir = run_experiment(mlp(deap, tmp_path), out=tmp_path / "plain")
    amp, amp_dir = run_experiment(mlp(deap, tmp_path, amp=True), out=tmp_path / "amp")
    assert seen == [False, True] and not torch.is_autocast_enabled("cpu")
    assert files(amp_dir) == files(plain_dir)
    table = pd.read_csv(amp_dir / "folds" / "000" / "predictions.csv")
    probs = table.filter(like="prob_").to_numpy()
    assert probs.dtype == np.float64 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert amp["numerics"] == [AMP] and plain["numerics"] == []
    assert json.loads((amp_dir / "summary.json").read_text())["config"]["amp"] is True
    assert f"Numerics: {AMP}." in (amp_dir / "summary.md").read_text()
    assert "Numerics" not in (plain_dir / "summary.md").read_text()
    assert AMP in (amp_dir / "report.html").read_text()


def test_tf32_and_deterministic_hold_for_the_fold_and_are_restored(deap, tmp_path,
                                                                  monkeypatch):
    seen = []
    fit = MLP.fit

    def recording_fit(self, *args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(),
                     torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32))
        return fit(self, *args, **kwargs)

    before = (torch.are_deterministic_algorithms_enabled(),
              torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    monkeypatch.setattr(MLP, "fit", recording_fit)
    summary, run_dir = run_experiment(mlp(deap, tmp_path, tf32=True, deterministic=True),
                                      out=tmp_path / "run")
    assert seen == [(True, "high", True)]
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_float32_matmul_precision(),
            torch.backends.cudnn.allow_tf32) == before == (False, "highest", before[2])
    assert summary["numerics"] == ["TF32 matmuls and convolutions (tf32)",
                                   "deterministic algorithms (deterministic)"]
    assert "Numerics: TF32" in (run_dir / "summary.md").read_text()


def test_numerics_restores_after_an_error_and_leaves_torch_alone_when_off():
    device = torch.device("cpu")
    with pytest.raises(RuntimeError, match="inside"), numerics(device, True, True, True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_autocast_enabled("cpu")
        raise RuntimeError("inside")
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_autocast_enabled("cpu")
    assert torch.get_float32_matmul_precision() == "highest"
    with numerics(device):
        assert not torch.is_autocast_enabled("cpu")
        assert not torch.are_deterministic_algorithms_enabled()


def test_amp_and_tf32_decide_resumption_deterministic_does_not(deap, tmp_path):
    out = tmp_path / "run"
    run_experiment(mlp(deap, tmp_path), out=out)
    for option in ("amp", "tf32"):
        with pytest.raises(ConfigError, match="different config"):
            run_experiment(mlp(deap, tmp_path, **{option: True}), out=out)
    summary, _ = run_experiment(mlp(deap, tmp_path, deterministic=True), out=out)
    assert summary["n_folds"] == 1
    # a run directory from before these options (no such keys) resumes with them off
    path = out / "config.yaml"
    old = {k: v for k, v in yaml.safe_load(path.read_text()).items()
           if k not in ("amp", "tf32", "deterministic")}
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    run_experiment(mlp(deap, tmp_path), out=out)


def test_numerics_options_from_set_yaml_and_bad_values():
    raw = {"method": "mlp", "dataset": "deap", "root": "x"}
    cfg = load_config(apply_overrides(raw, ["amp=true", "tf32=yes", "deterministic=1"]))
    assert (cfg.amp, cfg.tf32, cfg.deterministic) == (True, True, True)
    assert not load_config(raw).amp
    for option in ("amp", "tf32", "deterministic"):
        with pytest.raises(ConfigError, match=rf"option '{option}': got 'maybe'.*boolean") \
                as error:
            load_config({**raw, option: "maybe"})
        assert "\n" not in str(error.value)
