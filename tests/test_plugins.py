"""Methods from outside the package: import paths and ``affectlab.methods`` entry points under
the local, process and Ray executors and the command line; the scikit-learn and PyTorch
adapters."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from torch import nn

import affectlab
from affectlab.adapters import SklearnMethod, TorchMethod
from affectlab.api import Results
from affectlab.data import WindowSet
from affectlab.errors import ConfigError, UnknownNameError
from affectlab.methods import Method, Split
from affectlab.plugins import method_reference, resolve_method
from affectlab.run import load_config, plan_run, run_experiment

PATH = "affectlab_testplugin:UserMajority"
ENTRY_POINT = "user_majority_ep"
PLUGIN = '''
"""A user's method, outside affectlab: the training part's most frequent class."""
import numpy as np

from affectlab import Method, Predictions


class UserMajority(Method):
    name = "user_majority"
    summary = "the training part's most frequent class"

    def fit(self, train, unlabeled=None, val=None):
        self.majority_ = int(np.bincount(train.y, minlength=self.n_classes).argmax())
        return self

    def predict(self, test):
        probs = np.zeros((len(test), self.n_classes))
        probs[:, self.majority_] = 1.0
        return Predictions(probs)
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    """A folder holding the plugin module and an installed distribution's metadata declaring
    it as entry point ``user_majority_ep``; on ``sys.path`` and ``PYTHONPATH`` (so that
    workers see it) for this module's tests."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "affectlab_testplugin.py").write_text(PLUGIN)
    info = folder / "affectlab_testplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: affectlab-testplugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[affectlab.methods]\n{ENTRY_POINT} = {PATH}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
            str(folder), os.environ.get("PYTHONPATH")])))
        importlib.invalidate_caches()
        yield folder


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


def raw_config(deap, cache, method: str = PATH, **extra) -> dict:
    return {"method": method, "dataset": "deap", "root": str(deap), "protocol": "loso",
            "cache_dir": str(cache), **extra}


def assert_training_majority(run_dir: Path, deap, cache) -> None:
    """Every fold predicted its training part's most frequent class for every window."""
    plan = plan_run(load_config(raw_config(deap, cache, method="logreg")))
    predictions = Results.load(run_dir).predictions
    assert sorted(predictions["fold_index"].unique()) == [0, 1, 2]
    for k, rows in predictions.groupby("fold_index"):
        majority = np.bincount(plan.labels.y[plan.folds[k].train]).argmax()
        assert (rows["y_pred"] == majority).all()


# --------------------------------------------------------------------------- resolving

def test_path_and_entry_point_name_the_same_class(plugin_dir):
    cls = resolve_method(PATH)
    assert cls.__name__ == "UserMajority" and resolve_method(ENTRY_POINT) is cls
    assert resolve_method(cls) is cls
    with pytest.raises(UnknownNameError, match=f"valid: .*logreg.*{ENTRY_POINT}"):
        resolve_method("user_majorty")
    with pytest.raises(ConfigError, match="has no attribute 'Nope'"):
        resolve_method("affectlab_testplugin:Nope")
    with pytest.raises(ConfigError, match="cannot import 'no_such_pkg.mod'"):
        resolve_method("no_such_pkg.mod:X")
    with pytest.raises(ConfigError, match="not a subclass of affectlab.Method"):
        resolve_method("affectlab_testplugin:np")
    with pytest.raises(ConfigError, match="module:attribute"):
        resolve_method("affectlab_testplugin:")


def test_references_of_classes():
    from affectlab.methods.baselines import LogisticRegressionBaseline

    assert method_reference(LogisticRegressionBaseline) == "logreg"

    class Local(Method):
        name = "local"

    reference = method_reference(Local)                     # not importable: pinned here
    assert reference.endswith("<locals>.Local") and resolve_method(reference) is Local


# --------------------------------------------------------------------------- executors

def test_local_executor_runs_a_path_an_entry_point_and_a_class(plugin_dir, deap,
                                                               windowset_cache, tmp_path):
    summary, run_dir = run_experiment(load_config(raw_config(deap, windowset_cache)),
                                      out=tmp_path / "path")
    assert summary["method"] == PATH and summary["complete"]
    assert_training_majority(run_dir, deap, windowset_cache)
    by_name = affectlab.run(ENTRY_POINT, "deap", deap, "loso", out=tmp_path / "ep",
                            cache_dir=str(windowset_cache))
    assert_training_majority(by_name.run_dir, deap, windowset_cache)

    class Minority(resolve_method(PATH)):       # defined here: no worker could import it
        name = "minority"

        def fit(self, train, unlabeled=None, val=None):
            self.majority_ = int(np.bincount(train.y, minlength=self.n_classes).argmin())
            return self

    results = affectlab.run(Minority, "deap", deap, "loso", out=tmp_path / "class",
                            cache_dir=str(windowset_cache))
    flipped = results.predictions["y_pred"] != by_name.predictions["y_pred"]
    assert flipped.all()


def test_process_executor_workers_import_the_path_and_the_entry_point(plugin_dir, deap,
                                                                      windowset_cache,
                                                                      tmp_path):
    """One pool (a sweep over ``method``): its worker resolves both names itself."""
    from affectlab.sweep import run_sweep

    table, out = run_sweep(raw_config(deap, windowset_cache),
                           [f"method={PATH},{ENTRY_POINT}"], tmp_path / "sweep",
                           executor="process", workers=1)
    assert table["complete"].all() and len(table) == 2
    for run_dir in ";".join(table["run_dirs"]).split(";"):     # every run of every config
        assert_training_majority(Path(run_dir), deap, windowset_cache)


def test_command_line_runs_a_path_from_its_working_folder(plugin_dir, deap, windowset_cache,
                                                          tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # only the cwd
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "affectlab.cli", "run", "--method", PATH,
                           "--dataset", "deap", "--root", str(deap), "--protocol", "loso",
                           "--out", str(out), "--set", f"cache_dir={windowset_cache}",
                           "--json"], cwd=plugin_dir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert_training_majority(out, deap, windowset_cache)


def test_list_shows_entry_points_and_a_plugins_options(plugin_dir, monkeypatch, capsys):
    from affectlab.cli import main

    def listing(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["affectlab", "list", *args])
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code in (0, None)
        return capsys.readouterr().out

    assert f"{ENTRY_POINT:16s} {PATH}" in listing()
    assert listing(ENTRY_POINT).startswith(f"{ENTRY_POINT}: the training part's most")
    assert "options: none" in listing(PATH)


@pytest.fixture(scope="module")
def ray_instance(plugin_dir):
    """Started after PYTHONPATH names the plugin folder, so its workers import the plugin."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_ray_workers_run_a_path_an_entry_point_and_a_class_of_the_driver(
        plugin_dir, deap, windowset_cache, tmp_path, ray_instance):
    from affectlab.sweep import run_sweep

    table, _ = run_sweep(raw_config(deap, windowset_cache), [f"method={PATH},{ENTRY_POINT}"],
                         tmp_path / "sweep", executor="ray")
    assert table["complete"].all() and len(table) == 2
    for run_dir in ";".join(table["run_dirs"]).split(";"):     # every run of every config
        assert_training_majority(Path(run_dir), deap, windowset_cache)

    class Minority(resolve_method(PATH)):      # shipped by value: no worker can import it
        name = "minority"

        def fit(self, train, unlabeled=None, val=None):
            self.majority_ = int(np.bincount(train.y, minlength=self.n_classes).argmin())
            return self

    results = affectlab.run(Minority, "deap", deap, "loso", out=tmp_path / "class",
                            executor="ray", cache_dir=str(windowset_cache))
    majority = Results.load(table["run_dirs"][0]).predictions["y_pred"]
    assert (results.predictions["y_pred"] != majority).all()


# --------------------------------------------------------------------------- scikit-learn

#: what the logreg baseline fits, wrapped (module level: importable as test_plugins:LOGREG)
LOGREG = SklearnMethod(LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced"))


def test_sklearn_method_equals_the_logreg_baseline(deap, windowset_cache, tmp_path):
    Wrapped = LOGREG
    assert method_reference(Wrapped) == f"{__name__}:LOGREG"     # found by identity
    ours = affectlab.run(Wrapped, "deap", deap, "loso", out=tmp_path / "ours",
                         cache_dir=str(windowset_cache))
    theirs = affectlab.run("logreg", "deap", deap, "loso", out=tmp_path / "theirs",
                           cache_dir=str(windowset_cache))
    probs = ["prob_0", "prob_1"]
    np.testing.assert_allclose(ours.predictions[probs], theirs.predictions[probs], atol=1e-8)
    weak = affectlab.run(Wrapped, "deap", deap, "loso", out=tmp_path / "weak",
                         cache_dir=str(windowset_cache),
                         options={"method": {"params": {"C": 1e-6}}})
    assert not np.allclose(weak.predictions[probs], ours.predictions[probs], atol=1e-3)
    assert weak.summary["config"]["options"]["method"]["params"] == {"C": 1e-6}


def blobs(n: int = 240, seed: int = 0, noise_labels: bool = False) -> tuple[WindowSet, np.ndarray]:
    """Two modalities, ``a`` (4,) and ``b`` (2, 3); class 1 shifts ``a[0]`` and ``b[0, 0]``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = rng.normal(size=(n, 4)) + 3.0 * y[:, None] * np.eye(4)[0]
    b = rng.normal(size=(n, 2, 3))
    b[:, 0, 0] += 3.0 * y
    meta = pd.DataFrame({"subject": 1, "session": 1, "trial": np.arange(n), "window": 0})
    ws = WindowSet({"a": torch.tensor(a, dtype=torch.float32),
                    "b": torch.tensor(b, dtype=torch.float32)}, meta)
    return ws, (rng.integers(0, 2, n) if noise_labels else y)


def split(ws: WindowSet, y: np.ndarray | None, idx: np.ndarray) -> Split:
    return Split(ws.subset(idx), None if y is None else y[idx], ("a", "b"))


def test_sklearn_method_without_predict_proba_gives_one_hot():
    ws, y = blobs()
    cls = SklearnMethod(LinearSVC(C=1.0))
    method = cls(cls.Config(), n_classes=3, seed=0).fit(split(ws, y, np.arange(160)))
    probs = method.predict(split(ws, None, np.arange(160, 240))).probs
    assert probs.shape == (80, 3) and set(np.unique(probs)) == {0.0, 1.0}
    assert (probs.argmax(1) == y[160:]).mean() > 0.9 and probs[:, 2].sum() == 0


# --------------------------------------------------------------------------- PyTorch

def linear(n_features: int, n_classes: int) -> nn.Module:
    return nn.Linear(n_features, n_classes)


def test_torch_method_learns_and_predicts_probabilities():
    ws, y = blobs()
    cls = TorchMethod(linear, epochs=60, lr=0.05)
    method = cls(cls.Config(), n_classes=2, seed=0).fit(split(ws, y, np.arange(160)))
    probs = method.predict(split(ws, None, np.arange(160, 240))).probs
    assert probs.shape == (80, 2) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y[160:]).mean() > 0.9
    assert method.training_["epochs_run"] == 60                      # no validation: no stop
    assert next(method.model_.parameters()).device == method.device


def test_torch_method_stops_early_and_keeps_the_best_validation_epoch():
    ws, y = blobs(noise_labels=True)                 # nothing to learn: validation loss rises
    cls = TorchMethod(linear, epochs=200, lr=0.05, patience=3)
    method = cls(cls.Config(), n_classes=2, seed=0)
    val = split(ws, y, np.arange(160, 240))
    method.fit(split(ws, y, np.arange(160)), val=val)
    report = method.training_
    assert report["epochs_run"] == report["best_epoch"] + 3 < 200
    x_val = method._inputs(val)
    with torch.no_grad():
        loss = nn.CrossEntropyLoss(weight=torch.ones(2))(method.model_(x_val),
                                                         torch.as_tensor(y[160:240]))
    assert float(loss) == pytest.approx(report["best_val_loss"], rel=1e-5)


def test_torch_method_with_modalities_gets_a_dict_of_standardised_tensors():
    seen: dict = {}

    class TwoInputs(nn.Module):
        def __init__(self, shapes, n_classes):
            super().__init__()
            seen["shapes"] = shapes
            self.head = nn.Linear(4 + 6, n_classes)

        def forward(self, batch):
            seen["keys"] = sorted(batch)
            seen["mean"] = float(batch["b"].mean())
            return self.head(torch.cat([batch["a"], batch["b"].flatten(1)], dim=1))

    ws, y = blobs()
    cls = TorchMethod(TwoInputs, inputs="modalities", epochs=30, lr=0.05)
    method = cls(cls.Config(), n_classes=2, seed=0).fit(split(ws, y, np.arange(160)))
    assert seen["shapes"] == {"a": (4,), "b": (2, 3)} and seen["keys"] == ["a", "b"]
    probs = method.predict(split(ws, None, np.arange(240))).probs
    assert abs(seen["mean"]) < 0.2 and (probs.argmax(1) == y).mean() > 0.9


def test_torch_method_options_and_presets(deap, windowset_cache, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="method.lr"):
        TorchMethod(linear, lr=-1)
    with pytest.raises(ConfigError, match="epochs"):
        TorchMethod(linear, epochs=0)
    Net = TorchMethod(linear, epochs=40, lr=0.02, patience=4)
    assert (Net.Config().epochs, Net.Config().lr, Net.Config().patience) == (40, 0.02, 4)
    assert Net.presets["fast"] == {"epochs": 5} and TorchMethod(linear).Config().epochs == 100
    with pytest.raises(ValidationError, match="patience"):
        Net.Config(patience=0)                      # the field's constraint kept with its default
    monkeypatch.chdir(tmp_path)
    results = affectlab.run(Net, "deap", deap, "loso", method_preset="fast",
                            cache_dir=str(windowset_cache), options={"method": {"lr": 0.01}})
    resolved = results.summary["config"]["options"]["method"]
    assert resolved["epochs"] == 5 and resolved["lr"] == 0.01 and resolved["patience"] == 4
    assert results.summary["n_folds"] == 3
    # the run directory is named after the class's name, not its import path
    assert results.run_dir == Path("runs/torch_linear-deap-loso-binary_valence")


def test_adapters_refuse_what_they_cannot_wrap():
    with pytest.raises(TypeError, match="scikit-learn estimator"):
        SklearnMethod(object())
    with pytest.raises(ValueError, match="inputs"):
        TorchMethod(linear, inputs="images")


def test_adapter_classes_are_methods_with_options():
    cls = SklearnMethod(LogisticRegression(), name="lr_plugin")
    assert issubclass(cls, Method) and cls.name == "lr_plugin"
    assert set(cls.Config.model_fields) == {"params", "standardize"}
    assert cls.__module__ == __name__                # the caller's module
