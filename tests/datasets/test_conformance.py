"""Reader conformance, for all seven readers at once: on synthetic copies that carry every
release nuisance (NaN eye windows, NaN peripheral columns, subjects without faces, SEED without
eye features, empty AMIGOS cells, untracked OpenFace frames, short SEED-V eye windows, the +1
sample, DC offsets, artefact trials), the default preset and default labels read, and the
counts equal what the writer recorded in the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlab.datasets import DATASET_NAMES, get_spec, iter_recordings
from affectlab.datasets.base import check_recording
from affectlab.inspect import dataset_info
from affectlab.labels import default_scheme, make_labels
from affectlab.presets import prepare

ZERO = {"absent_trials": 0, "absent_windows": 0, "invalid_windows": 0}


def _manifest(root) -> dict:
    return json.loads((root.parent / "manifest.json").read_text())[root.name]


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_default_preset_and_labels_match_the_manifest(dataset, synthetic_root):
    root = synthetic_root(dataset, n_subjects=3)
    entry = _manifest(root)
    assert entry["nuisances_on"] and entry["nuisances"], "the writer records its nuisances"
    expected = entry["expected"]
    windows, _ = prepare(dataset, root, "default", use_cache=False)
    meta = windows.meta
    assert meta["subject"].nunique() == expected["subjects"]
    assert meta.groupby(["subject", "session", "trial"]).ngroups == expected["trials"]
    assert len(windows) == expected["windows"]
    missing = windows.description["missing"]
    for name in windows.names:
        assert missing[name] == expected["missing"].get(name, ZERO), name
        assert int((~windows.available(name)).sum()) == (
            missing[name]["absent_windows"] + missing[name]["invalid_windows"])
    assert windows.description["trials_without_windows"] == expected["trials_without_windows"]
    # no release nuisance is a channel flat over a whole recording, none an unlisted subject
    assert windows.description["flat_channels"] == {} and windows.description["unlisted"] == {}
    labels = make_labels(meta, dataset, default_scheme(dataset))
    assert labels.defined.all()
    assert len(np.unique(labels.y)) == labels.n_classes


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_every_recording_conforms(dataset, synthetic_root):
    spec = get_spec(dataset)
    count = 0
    for rec in iter_recordings(dataset, synthetic_root(dataset, n_subjects=3)):
        check_recording(rec, spec)
        count += 1
    assert count


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_info_lists_present_modalities_and_missing_counts(dataset, synthetic_root,
                                                          windowset_cache):
    root = synthetic_root(dataset, n_subjects=3)
    info = dataset_info(dataset, root, "default", cache_dir=windowset_cache)
    expected = _manifest(root)["expected"]
    assert info["n_subjects"] == expected["subjects"]
    assert set(info["modalities"]) == set(info["missing"])
    assert not info["absent_modalities"]
    for counts in info["missing"].values():
        assert counts["windows"] == counts["absent_windows"] + counts["invalid_windows"]


def test_nan_policy_raise_still_stops_on_nuisances(synthetic_root):
    from affectlab.errors import DatasetFormatError

    root = synthetic_root("seed_iv", n_subjects=3)
    with pytest.raises(DatasetFormatError, match=r"eye_\d+.*non-finite"):
        list(iter_recordings("seed_iv", root, raw=False, nan_policy="raise"))


def test_clean_synth_has_no_nuisances(tmp_path):
    from affectlab.datasets import synth

    manifest = synth(tmp_path, ["seed_iv", "deap"], n_subjects=2, seed=0, nuisances=False)
    for name in ("seed_iv", "deap"):
        assert manifest[name]["nuisances"] == {}
        assert manifest[name]["expected"]["missing"] == {}
    windows, _ = prepare("seed_iv", tmp_path / "seed_iv", "default", use_cache=False)
    assert windows.available("eye").all()
