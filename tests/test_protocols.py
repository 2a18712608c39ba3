"""Protocols: the leakage property, fold structure, leaky flag and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectlab.errors import ConfigError, ProtocolError, UnknownNameError
from affectlab.protocols import PROTOCOLS, check_classes, create_protocol, leak_check

LEAK_FREE_OPTIONS = {
    "subject_dependent": {"n_splits": 2},
    "loso": {},
    "subject_kfold": {"n_splits": 3},     # 3 subjects: 2 training subjects, 1 validates
    "cross_session": {},
    "stimulus_kfold": {"n_splits": 2},
    "cross_modal": {"modalities": ["eeg", "eye"], "split": "kfold", "n_splits": 2},
    "label_ratio": {"ratio": 0.5, "n_splits": 2},
}


def make_meta(n_subjects: int, n_sessions: int, n_trials: int, n_windows: int) -> pd.DataFrame:
    rows = [{"subject": s, "session": e, "trial": t, "window": w, "stimulus": f"clip{t}"}
            for s in range(1, n_subjects + 1) for e in range(1, n_sessions + 1)
            for t in range(1, n_trials + 1) for w in range(n_windows)]
    return pd.DataFrame(rows)


def test_every_registered_protocol_is_covered():
    assert set(PROTOCOLS.names()) == set(LEAK_FREE_OPTIONS) | {"random_window"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_subjects=st.integers(2, 4), n_sessions=st.integers(2, 3), n_trials=st.integers(4, 8),
       n_windows=st.integers(1, 4), seed=st.integers(0, 99),
       name=st.sampled_from(sorted(LEAK_FREE_OPTIONS)),
       val_by=st.sampled_from([None, "trial", "subject"]))
def test_leak_free_protocols_never_split_a_trial(n_subjects, n_sessions, n_trials, n_windows,
                                                 seed, name, val_by):
    meta = make_meta(n_subjects, n_sessions, n_trials, n_windows)
    y = (meta["trial"].to_numpy() % 2).astype(int)
    options = {**LEAK_FREE_OPTIONS[name], **({"val_by": val_by} if val_by else {})}
    protocol = create_protocol(name, "seed_iv", seed=seed, **options)
    assert not protocol.leaky
    try:
        folds = protocol.folds(meta, y)
    except ProtocolError as err:     # validation by subject with a single training subject
        assert protocol.opts["val_by"] == "subject" and "needs at least 2" in str(err)
        by_trial = create_protocol(name, "seed_iv", seed=seed, **{**options, "val_by": "trial"})
        assert min(meta["subject"][np.r_[f.train, f.val]].nunique()
                   for f in by_trial.folds(meta, y)) < 2
        return
    subjects = meta["subject"].to_numpy()
    for fold in folds:
        assert leak_check(meta, fold) == []
        covered = np.concatenate([fold.train, fold.val, fold.test])
        assert len(np.unique(covered)) == len(covered)
        if protocol.opts["val_by"] == "subject":
            assert len(fold.val) and not set(subjects[fold.val]) & set(subjects[fold.train])


def test_leak_free_on_every_synthetic_dataset(synthetic_root):
    from affectlab.datasets import DATASET_NAMES
    from affectlab.presets import prepare

    for dataset in DATASET_NAMES:
        ws, _ = prepare(dataset, synthetic_root(dataset, n_subjects=3), "default",
                        use_cache=False)
        for name, options in LEAK_FREE_OPTIONS.items():
            if name == "cross_modal" or (name == "cross_session" and ws.meta["session"].nunique()
                                         < 2):
                continue
            for fold in create_protocol(name, dataset, **options).folds(ws.meta):
                assert leak_check(ws.meta, fold) == [], (dataset, name, fold.name)


def test_random_window_is_leaky_and_does_split_trials():
    meta = make_meta(2, 1, 4, 10)
    protocol = create_protocol("random_window", "deap", n_repeats=2)
    assert protocol.leaky
    folds = protocol.folds(meta)
    assert len(folds) == 2 and any(leak_check(meta, f) for f in folds)
    fold = folds[0]
    assert abs(len(fold.test) - 0.15 * len(meta)) <= 1
    clips = create_protocol("random_window", "deap", unit="clip").folds(meta)[0]
    clip_ids = meta["stimulus"] + "_" + meta["window"].astype(str)
    assert not set(clip_ids[clips.train]) & set(clip_ids[clips.test])


def test_loso_folds_and_target():
    meta = make_meta(3, 2, 4, 2)
    folds = create_protocol("loso", "seed_iv").folds(meta)
    assert [f.name for f in folds] == ["subj1", "subj2", "subj3"]
    for fold in folds:
        assert set(meta["subject"][fold.test]) == {fold.info["subject"]}
        np.testing.assert_array_equal(fold.unlabeled, fold.test)
        assert fold.info["subject"] not in set(meta["subject"][np.r_[fold.train, fold.val]])
    per_session = create_protocol("loso", "seed_iv", per_session=True).folds(meta)
    assert len(per_session) == 6


def test_validation_by_whole_subjects():
    meta = make_meta(6, 1, 4, 2)
    subjects = meta["subject"].to_numpy()
    for fold in create_protocol("subject_kfold", "deap", n_splits=3, val_by="subject",
                                val_fraction=0.25).folds(meta):
        val_subjects = set(subjects[fold.val])
        assert len(val_subjects) == 1
        assert not val_subjects & set(subjects[fold.train])
        assert not val_subjects & set(subjects[fold.test])
    by_trial = create_protocol("subject_kfold", "deap", n_splits=3, val_by="trial").folds(meta)[0]
    assert set(subjects[by_trial.val]) <= set(subjects[by_trial.train])
    with pytest.raises(ProtocolError, match="val_by=subject needs at least 2"):
        create_protocol("subject_dependent", "deap", n_splits=2, val_by="subject").folds(meta)
    with pytest.raises(ConfigError, match="protocol.val_by"):
        create_protocol("loso", "deap", val_by="session")


CROSS_SUBJECT = {"loso": {}, "subject_kfold": {"n_splits": 3},
                 "cross_modal": {"base": "loso", "modalities": ["eeg", "eye"]},
                 "label_ratio": {"base": "subject_kfold", "n_splits": 3, "ratio": 0.5}}
WITHIN_SUBJECTS = {"subject_dependent": {"n_splits": 2}, "cross_session": {},
                   "stimulus_kfold": {"n_splits": 2},
                   "cross_modal": {"modalities": ["eeg", "eye"], "split": "kfold",
                                   "n_splits": 2},
                   "label_ratio": {"ratio": 0.5, "n_splits": 2}, "random_window": {}}


@pytest.mark.parametrize("name", sorted(CROSS_SUBJECT))
def test_cross_subject_protocols_validate_on_whole_training_subjects(name):
    meta = make_meta(6, 2, 4, 2)
    subjects = meta["subject"].to_numpy()
    protocol = create_protocol(name, "seed_iv", **CROSS_SUBJECT[name])
    assert protocol.is_cross_subject() and protocol.opts["val_by"] == "subject"
    for fold in protocol.folds(meta):
        val, train, test = (set(subjects[part]) for part in (fold.val, fold.train, fold.test))
        assert val and train and not val & train and not val & test and not train & test
        assert fold.info["val_subjects"] == sorted(val)
    again = create_protocol(name, "seed_iv", **CROSS_SUBJECT[name]).folds(meta)
    assert [f.info["val_subjects"] for f in again] == [f.info["val_subjects"]
                                                       for f in protocol.folds(meta)]


@pytest.mark.parametrize("name", sorted(WITHIN_SUBJECTS))
def test_other_protocols_keep_validation_by_trial(name):
    meta = make_meta(3, 2, 6, 2)
    protocol = create_protocol(name, "seed_iv", **WITHIN_SUBJECTS[name])
    assert not protocol.is_cross_subject() and protocol.opts["val_by"] == "trial"
    explicit = create_protocol(name, "seed_iv", val_by="trial", **WITHIN_SUBJECTS[name])
    for a, b in zip(protocol.folds(meta), explicit.folds(meta), strict=True):
        for part in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
        assert "val_subjects" not in a.info


def test_loso_validation_subjects_follow_the_seed_and_can_be_trials_again():
    meta = make_meta(8, 1, 4, 2)
    subjects = meta["subject"].to_numpy()
    chosen = {seed: [f.info["val_subjects"] for f in create_protocol(
        "loso", "deap", seed=seed).folds(meta)] for seed in (0, 1)}
    assert chosen[0] != chosen[1]
    assert all(len(v) == 2 for v in chosen[0])          # ceil(0.2 x 7 training subjects)
    by_trial = create_protocol("loso", "deap", val_by="trial").folds(meta)
    for fold in by_trial:
        assert set(subjects[fold.val]) <= set(subjects[fold.train])
        assert "val_subjects" not in fold.info


def test_loso_on_few_subjects():
    three = make_meta(3, 1, 4, 2)
    subjects = three["subject"].to_numpy()
    for fold in create_protocol("loso", "deap").folds(three):   # 2 training subjects: 1 + 1
        assert len(set(subjects[fold.val])) == 1 and len(set(subjects[fold.train])) == 1
    two = make_meta(2, 1, 4, 2)
    with pytest.raises(ProtocolError) as err:
        create_protocol("loso", "deap").folds(two)
    assert str(err.value) == (
        "loso: fold subj1 has 1 training subject; val_by=subject (the default under "
        "cross-subject protocols) needs at least 2 (one to validate on, one to train on): set "
        "protocol.val_by=trial or protocol.val_fraction=0")
    assert len(create_protocol("loso", "deap", val_by="trial").folds(two)[0].val)
    assert not len(create_protocol("loso", "deap", val_fraction=0).folds(two)[0].val)


def test_fixed_trial_split_of_the_papers():
    meta = make_meta(1, 3, 24, 2)
    folds = create_protocol("subject_dependent", "seed_iv", split="fixed",
                            val_fraction=0).folds(meta)
    assert len(folds) == 3
    assert sorted(set(meta["trial"][folds[0].train])) == list(range(1, 17))
    assert sorted(set(meta["trial"][folds[0].test])) == list(range(17, 25))
    with pytest.raises(ConfigError, match="train_trials"):
        create_protocol("subject_dependent", "deap", split="fixed").folds(make_meta(1, 1, 4, 1))


def test_cross_modal_directions():
    meta = make_meta(1, 1, 10, 2)
    folds = create_protocol("cross_modal", "seed_iv", modalities=["eeg", "eye"],
                            train_trials=6).folds(meta)
    assert [(f.train_modalities, f.test_modalities) for f in folds] == [
        (("eeg",), ("eeg",)), (("eeg",), ("eye",)), (("eye",), ("eeg",)), (("eye",), ("eye",))]
    with pytest.raises(ConfigError, match="two modalities"):
        create_protocol("cross_modal", "seed_iv").folds(meta)


def test_label_ratio_keeps_a_fraction_of_training_trials():
    meta = make_meta(1, 1, 20, 3)
    y = (meta["trial"].to_numpy() % 2).astype(int)
    full = create_protocol("subject_dependent", "deap", n_splits=2, val_fraction=0).folds(meta, y)
    part = create_protocol("label_ratio", "deap", ratio=0.2, n_splits=2,
                           val_fraction=0).folds(meta, y)
    for a, b in zip(full, part, strict=True):
        assert len(b.train) == pytest.approx(0.2 * len(a.train), abs=3)
        assert set(b.train) <= set(a.train)
        assert set(a.train) - set(b.train) <= set(b.unlabeled)


def test_protocols_that_do_not_fit_the_data():
    one_session = make_meta(3, 1, 4, 2)
    with pytest.raises(ProtocolError, match="cross_session needs at least 2 sessions"):
        create_protocol("cross_session", "deap").folds(one_session)
    with pytest.raises(ProtocolError, match="loso needs at least 2 subjects"):
        create_protocol("loso", "deap").folds(make_meta(1, 1, 4, 2))
    with pytest.raises(UnknownNameError, match="loso"):
        create_protocol("leave_one_out", "deap")
    with pytest.raises(ConfigError, match="protocol.k"):
        create_protocol("loso", "deap", k=3)


def test_class_absent_from_training():
    meta = make_meta(2, 1, 4, 2)
    y = (meta["subject"].to_numpy() == 2).astype(int)      # class 1 only in subject 2
    folds = create_protocol("loso", "deap", val_by="trial").folds(meta, y)   # 1 train subject
    with pytest.raises(ProtocolError, match="subj1: class \\[1\\]|lack a class"):
        check_classes(folds, y, 2, "error")
    assert check_classes(folds, y, 2, "skip") == []
    assert len(check_classes(folds, y, 2, "train")) == 2


def test_sklearn_compatible_split():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate

    meta = make_meta(3, 1, 6, 2)
    rng = np.random.default_rng(0)
    y = (meta["trial"].to_numpy() % 2).astype(int)
    x = rng.normal(size=(len(meta), 3)) + y[:, None]
    protocol = create_protocol("loso", "deap")
    scores = cross_validate(LogisticRegression(), x, y, cv=list(protocol.split(meta, y)))
    assert len(scores["test_score"]) == 3
