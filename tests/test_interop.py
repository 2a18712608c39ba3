"""WindowSet as a PyTorch dataset, protocols as scikit-learn CV splitters, export to MNE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from torch.utils.data import DataLoader

from affectlab import create_protocol, load, make_labels
from affectlab.datasets.channels import DEAP_EEG
from affectlab.errors import ConfigError, ProtocolError
from affectlab.protocols import trial_keys


@pytest.fixture(scope="module")
def deap(synthetic_root):
    return synthetic_root("deap", n_subjects=3, seconds=4)


@pytest.fixture(scope="module")
def windows(deap, windowset_cache):
    """DEAP's default preset (EEG DE 32 x 5, peripheral statistics) and binary valence."""
    ws = load("deap", deap, cache_dir=windowset_cache)
    return ws, make_labels(ws.meta, "deap", "binary_valence").y


def features(ws) -> np.ndarray:
    """``(n, d)`` flattened modalities, z-scored (so that the solver converges)."""
    x = np.concatenate([ws.numpy(n).reshape(len(ws), -1) for n in ws.names], axis=1)
    return (x - x.mean(0)) / x.std(0).clip(1e-6)


# --------------------------------------------------------------------------- PyTorch

def test_items_hold_float32_modalities_label_and_window_table(windows):
    ws, y = windows
    view = ws.subset([7, 3]).with_labels(y[[7, 3]])
    item = view[1]
    assert set(item) == {"eeg", "pps", "label", "subject", "session", "trial", "window",
                         "stimulus"}
    assert item["eeg"].dtype == torch.float32 and item["eeg"].shape == (32, 5)
    assert torch.equal(item["eeg"], ws.tensor("eeg")[3])              # row 3 of the base
    assert item["label"] == y[3] and isinstance(item["label"], int)
    row = ws.meta.iloc[3]
    assert (item["subject"], item["trial"], item["window"]) == (row.subject, row.trial,
                                                                 row.window)
    assert view[-1]["window"] == item["window"]
    assert "label" not in ws[0]                                       # no labels attached


def test_dataloader_batches_every_window_once_with_default_collate(windows):
    ws, y = windows
    batches = list(DataLoader(ws.with_labels(y), batch_size=8))
    assert batches[0]["eeg"].shape == (8, 32, 5) and batches[0]["pps"].dtype == torch.float32
    assert batches[0]["label"].dtype == torch.int64
    labels = torch.cat([b["label"] for b in batches])
    trials = torch.cat([b["trial"] for b in batches])
    assert labels.tolist() == y.tolist()
    assert trials.tolist() == ws.meta["trial"].tolist()
    assert len(batches[0]["stimulus"]) == 8 and isinstance(batches[0]["stimulus"][0], str)


def test_indexing_errors_and_label_checks(windows):
    ws, y = windows
    with pytest.raises(TypeError, match="subset"):
        ws[0:2]
    with pytest.raises(IndexError):
        ws[len(ws)]
    with pytest.raises(Exception, match="labels"):
        ws.with_labels(y[:-1])
    with pytest.raises(Exception, match="integer"):
        ws.with_labels(y.astype(float))
    assert ws.with_labels(y).subset([2, 0]).y.tolist() == y[[2, 0]].tolist()


# --------------------------------------------------------------------------- scikit-learn

LEAK_FREE = {"subject_dependent": {"n_splits": 2}, "loso": {}, "subject_kfold": {"n_splits": 3},
             "stimulus_kfold": {"n_splits": 3}, "label_ratio": {"ratio": 0.5, "n_splits": 2},
             "cross_modal": {"modalities": ["eeg", "pps"], "split": "kfold", "n_splits": 2}}


@pytest.mark.parametrize("name", LEAK_FREE)
def test_bound_protocol_splits_never_share_a_trial(windows, name):
    ws, y = windows
    protocol = create_protocol(name, "deap", **LEAK_FREE[name]).bind(ws)
    trials = trial_keys(ws.meta)
    splits = list(protocol.split(features(ws), y))
    folds = protocol.folds(ws.meta, y)
    assert len(splits) == protocol.get_n_splits() > 0
    for train, test in splits:
        assert len(train) and len(test)
        assert not set(trials[train]) & set(trials[test])
    if name != "cross_modal":                 # train = the fold's training + validation parts
        assert [len(tr) for tr, _ in splits] == [len(f.train) + len(f.val) for f in folds]
    else:                                     # four directions of one base fold: one split
        assert len(splits) == len(folds) // 4


def test_leaky_protocol_does_share_trials(windows):
    ws, y = windows
    protocol = create_protocol("random_window", "deap", n_repeats=2).bind(ws.meta)
    trials = trial_keys(ws.meta)
    assert all(set(trials[tr]) & set(trials[te]) for tr, te in protocol.split(None, y))


def test_cross_val_score_and_grid_search_take_a_bound_protocol(windows):
    ws, y = windows
    X = features(ws)
    loso = create_protocol("loso", "deap")
    scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=loso.bind(ws))
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    by_groups = cross_val_score(LogisticRegression(max_iter=500), X, y, groups=ws.meta,
                                cv=loso)
    np.testing.assert_allclose(by_groups, scores)
    search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0]},
                          cv=create_protocol("subject_kfold", "deap", n_splits=3).bind(ws))
    search.fit(X, y)
    assert search.n_splits_ == 3 and search.best_params_["C"] in (0.01, 1.0)
    test_subjects = [sorted(ws.meta["subject"].iloc[te].unique()) for _, te in
                     search.cv.split(X, y)]
    assert sorted(s for group in test_subjects for s in group) == [1, 2, 3]


def test_split_needs_a_window_table_of_the_same_length(windows):
    ws, y = windows
    loso = create_protocol("loso", "deap")
    with pytest.raises(ProtocolError, match="bind"):
        list(loso.split(features(ws), y))
    with pytest.raises(ProtocolError, match="X has 10 rows"):
        list(loso.bind(ws).split(features(ws)[:10]))
    with pytest.raises(ProtocolError, match="window table"):
        loso.bind(pd.DataFrame({"x": [1]}))


def test_folds_and_split_on_the_table_still_work(windows):
    ws, y = windows
    loso = create_protocol("loso", "deap")
    folds = loso.folds(ws.meta, y)
    assert [f.name for f in folds] == ["subj1", "subj2", "subj3"]
    for (train, test), fold in zip(loso.split(ws.meta, y), folds, strict=True):
        np.testing.assert_array_equal(test, fold.test)
        np.testing.assert_array_equal(train, np.sort(np.r_[fold.train, fold.val]))


# --------------------------------------------------------------------------- MNE

@pytest.fixture(scope="module")
def raw_windows(deap, windowset_cache):
    return load("deap", deap, preset="raw", cache_dir=windowset_cache)


def test_to_mne_keeps_channels_rate_data_and_window_table(raw_windows, windows):
    ws = raw_windows
    y = make_labels(ws.meta, "deap", "binary_valence").y
    epochs = ws.with_labels(y).to_mne("eeg", scale=1e-6)
    assert epochs.ch_names == DEAP_EEG and epochs.info["sfreq"] == 128.0
    assert set(epochs.get_channel_types()) == {"eeg"}
    np.testing.assert_allclose(epochs.get_data(copy=True), ws.numpy("eeg") * 1e-6, rtol=1e-6)
    assert epochs.metadata["label"].tolist() == y.tolist()
    assert epochs.metadata["trial"].tolist() == ws.meta["trial"].tolist()
    assert len(epochs["label == 1"]) == int((y == 1).sum())
    eog = ws.to_mne("eog")
    assert eog.ch_names == ["hEOG", "vEOG"] and eog.get_channel_types() == ["eog", "eog"]
    with pytest.raises(ConfigError, match="to_mne takes raw windows"):
        windows[0].to_mne("eeg")                       # DE features, not a signal


def test_to_mne_without_recorded_channel_names(raw_windows):
    """A WindowSet cached before channel names were recorded: numbered names, rate from the
    window length."""
    import dataclasses

    description = {k: v for k, v in raw_windows.description.items()
                   if k not in ("channels", "signal_rates")}
    old = dataclasses.replace(raw_windows, description=description)
    epochs = old.to_mne("gsr")
    assert epochs.ch_names == ["gsr1"] and epochs.info["sfreq"] == 128.0
