"""The top-level API: the README's Python examples run as written (on a synthetic DEAP), the
package imports lazily, ``affectlab.run`` stays callable, and ``usable_windows`` counts drops
as the runner does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import affectlab
from affectlab.data import WindowSet, usable_windows

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT_LINE = 'root = "/data/DEAP"'


def readme_blocks(section: str) -> list[str]:
    """The ```python blocks of a README section (``## <section>`` up to the next ``## ``)."""
    text = README.read_text()
    assert f"\n## {section}\n" in text, f"README has no section '{section}'"
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.fixture
def readme_namespace(synthetic_root, windowset_cache, tmp_path, monkeypatch) -> dict:
    """The README's Python API blocks executed in order, with ``root`` set to a synthetic DEAP
    (the only change), in an empty working folder and the shared WindowSet cache."""
    blocks = readme_blocks("Python API")
    assert len(blocks) == 2 and blocks[0].count(ROOT_LINE) == 1
    deap = synthetic_root("deap", n_subjects=3, seconds=4)
    monkeypatch.setenv("AFFECTLAB_CACHE", str(windowset_cache))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    code = blocks[0].replace(ROOT_LINE, f"root = {str(deap)!r}")
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    exec(compile(blocks[1], "README.md (interop)", "exec"), namespace)
    return namespace


def test_readme_python_api_example(readme_namespace):
    ns = readme_namespace
    results = ns["results"]
    assert list(results.per_fold["fold"]) == ["subj1", "subj2", "subj3"]
    # the loop over the public pieces reproduces the runner's folds exactly
    runner = results.per_fold.set_index("fold")["accuracy"].to_dict()
    assert ns["accuracy"] == pytest.approx(runner, abs=1e-12)
    assert results.run_dir == Path("runs/logreg-deap-loso-binary_valence")
    assert len(results.predictions) == results.summary["n_windows"] == len(ns["ws"])
    assert set(results.predictions["fold"]) == {"subj1", "subj2", "subj3"}
    assert sorted(results.per_subject["subject"]) == [1, 2, 3]
    assert results.per_fold["val_balanced_accuracy"].notna().all()
    assert results.per_fold["subject"].tolist() == [1, 2, 3]       # the fold's info

    batch, epochs = ns["batch"], ns["epochs"]
    assert batch["eeg"].shape == (8, 32, 5) and batch["eeg"].dtype == torch.float32
    assert batch["label"].tolist() == ns["y"][:8].tolist()
    assert len(ns["scores"]) == 3 and np.all((ns["scores"] >= 0) & (ns["scores"] <= 1))
    assert epochs.info["sfreq"] == 128.0 and len(epochs.ch_names) == 32
    assert list(epochs.metadata["subject"].unique()) == [1, 2, 3]


def test_readme_own_method_example(readme_namespace):
    (block,) = readme_blocks("Your own method")
    ns = readme_namespace
    exec(compile(block, "README.md (Your own method)", "exec"), ns)
    forest = ns["forest"]
    assert forest.summary["n_folds"] == 3 and forest.summary["complete"]
    assert forest.run_dir.name.startswith("sklearn_randomforestclassifier-deap-loso")
    majority = ns["Majority"](ns["Majority"].Config(), n_classes=2)
    train = affectlab.Split(ns["ws"], ns["y"], tuple(ns["ws"].names))
    probs = majority.fit(train).predict(train).probs
    assert (probs.argmax(1) == np.bincount(ns["y"]).argmax()).all()


def test_import_is_lazy_and_names_are_public():
    code = ("import sys, affectlab; heavy = [m for m in ('torch', 'sklearn', 'pandas', "
            "'affectlab.methods') if m in sys.modules]; print(heavy, sorted(dir(affectlab)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("[] ")
    for name in ("load", "run", "Results", "make_labels", "create_protocol", "create_method",
                 "Split", "usable_windows", "SklearnMethod", "TorchMethod"):
        assert name in affectlab.__all__ and f"'{name}'" in out
        assert getattr(affectlab, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        affectlab.nope  # noqa: B018


def test_run_stays_callable_after_the_runner_module_is_imported(monkeypatch):
    import affectlab.api
    import affectlab.run

    assert affectlab.run is sys.modules["affectlab.run"]        # the module shadows the name
    monkeypatch.setattr(affectlab.api, "run", lambda *args, **kw: ("ran", args, kw))
    assert affectlab.run("logreg", "deap", "x", seed=1) == ("ran", ("logreg", "deap", "x"),
                                                             {"seed": 1})


def windows_with_gaps() -> WindowSet:
    """6 windows: window 1 without a label, 2 without eye data, 3 without either, 4 without
    EEG."""
    meta = pd.DataFrame({"subject": [1] * 6, "session": [1] * 6, "trial": [1, 1, 2, 2, 3, 3],
                         "window": [0, 1, 0, 1, 0, 1],
                         "avail_eeg": [True, True, True, True, False, True],
                         "avail_eye": [True, True, False, False, True, True]})
    return WindowSet({"eeg": torch.zeros(6, 2), "eye": torch.zeros(6, 3)}, meta)


def test_usable_windows_counts_each_drop_under_its_first_reason():
    ws = windows_with_gaps()
    y = np.array([0, -1, 1, -1, 0, 1])
    keep, dropped = usable_windows(ws, y)
    assert keep.tolist() == [0, 5]
    assert dropped == {"undefined_label": 2, "missing_eye": 1, "missing_eeg": 1}
    keep, dropped = usable_windows(ws, y, modalities=["eeg"])          # eye not used
    assert keep.tolist() == [0, 2, 5] and dropped == {"undefined_label": 2, "missing_eeg": 1}
    assert usable_windows(ws.with_labels(y)).index.tolist() == [0, 5]   # attached labels
    assert usable_windows(ws).dropped == {"missing_eeg": 1, "missing_eye": 2}


def test_runner_drops_what_usable_windows_drops(synthetic_root, windowset_cache):
    """The runner's plan keeps exactly ``usable_windows`` of the prepared windows (preset
    ``all`` on DEAP: the synthetic release has subjects without face videos)."""
    from affectlab.run import load_config, plan_run

    deap = synthetic_root("deap", n_subjects=3, seconds=4)
    plan = plan_run(load_config({"method": "logreg", "dataset": "deap", "root": str(deap),
                                 "protocol": "loso", "preset": "all",
                                 "cache_dir": str(windowset_cache),     # 2 subjects left:
                                 "options": {"protocol": {"val_by": "trial"}}}))   # no val subject
    ws = affectlab.load("deap", deap, preset="all", cache_dir=windowset_cache)
    labels = affectlab.make_labels(ws.meta, "deap", "binary_valence")
    keep, dropped = affectlab.usable_windows(ws, labels)
    assert dropped == plan.n_dropped and dropped.get("missing_face_au", 0) > 0
    assert len(keep) == len(plan.windows)
    pd.testing.assert_frame_equal(ws.meta.iloc[keep].reset_index(drop=True), plan.windows.meta)
