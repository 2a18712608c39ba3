"""SEED reader: synthetic round trip, sessions by date, raw / feature / eye files, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from affectlab.datasets import get_spec, iter_recordings
from affectlab.datasets import seed as seed_mod
from affectlab.datasets.base import check_recording
from affectlab.errors import DatasetFormatError

from .helpers import copy_dataset, edit_mat

SECONDS = 2
FIRST = "1_20131027.mat"          # subject 1, session 1


@pytest.fixture(scope="module")
def seed_root(synthetic_root):
    return synthetic_root("seed", n_subjects=2, seconds=SECONDS)


def _copy(src: Path, tmp_path: Path, *modify: str, **drop) -> Path:
    return copy_dataset(src, tmp_path / "seed", *modify, **drop)


def _read(root, **options):
    return list(iter_recordings("seed", root, **options))


def test_round_trip_conforms(seed_root):
    spec = get_spec("seed")
    recordings = _read(seed_root)
    assert len(recordings) == 2 * 3 * 15
    for rec in recordings:
        check_recording(rec, spec)
    first = recordings[0]
    eeg = first.streams["eeg"]
    assert eeg.data.shape == (62, SECONDS * 200 + 1) and eeg.sfreq == 200.0
    assert eeg.ch_names[:3] == ["FP1", "FPZ", "FP2"]
    assert first.features["de_LDS"].axes == ("window", "channel", "band")
    assert [r.native_label for r in recordings[:15]] == [v + 1 for v in seed_mod.LABELS]
    assert [r.stimulus for r in recordings[:2]] == ["clip01", "clip02"]
    assert {(r.subject, r.session) for r in recordings} == {(s, k) for s in (1, 2)
                                                           for k in (1, 2, 3)}


def test_windows_match_stimulus_length(seed_root):
    for rec in _read(seed_root, subjects=[1]):
        for name in (*seed_mod.BAND_SETS, "eye"):
            assert rec.features[name].n_windows == SECONDS, name
        assert rec.features["de_LDS"].data.shape[1:] == (62, 5)
        assert rec.features["eye"].data.shape[1:] == (33,)


def test_features_consistent_with_raw(seed_root):
    rec = _read(seed_root, subjects=[1])[4]
    power = seed_mod.band_power(rec.streams["eeg"].data, 200.0, 1.0)      # (62, T, 5)
    de = 0.5 * np.log(2 * np.pi * np.e * power) + seed_mod.DE_OFFSET
    released = rec.features["de_movingAve"].data.mean(axis=0)            # (62, 5)
    assert np.corrcoef(de.mean(axis=1).ravel(), released.ravel())[0, 1] > 0.95
    assert 10 < released.min() and released.max() < 27


def test_sessions_numbered_by_date(seed_root):
    recordings = _read(seed_root, subjects=[1])
    dates = {r.session: Path(r.source).name for r in recordings}
    assert dates == {1: FIRST, 2: "1_20131030.mat", 3: "1_20131107.mat"}


def test_fourth_session_file_is_an_error(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures")
    shutil.copy(root / "ExtractedFeatures" / FIRST, root / "ExtractedFeatures" / "1_20140101.mat")
    with pytest.raises(DatasetFormatError, match="subject 1 has 4 files.*3 files"):
        _read(root, subjects=[1])


def test_raw_false_skips_raw_files(seed_root, tmp_path):
    root = tmp_path / "seed"
    root.mkdir()
    (root / "ExtractedFeatures").symlink_to(seed_root / "ExtractedFeatures")
    recordings = _read(root, raw=False)
    assert len(recordings) == 90
    assert all(not r.streams and "de_LDS" in r.features for r in recordings)
    with pytest.raises(DatasetFormatError, match="Preprocessed_EEG.*raw=False"):
        _read(root)


def test_raw_variables_matched_by_suffix(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "Preprocessed_EEG")
    path = root / "Preprocessed_EEG" / FIRST

    def rename(content):
        for name in list(content):
            content[name.replace("djc_", "someone_")] = content.pop(name)
        content["someone_info"] = np.zeros((1, 3))
    edit_mat(path, rename)
    assert "someone_eeg7" in [name for name, _, _ in scipy.io.whosmat(path)]
    original = _read(seed_root, subjects=[1])[6].streams["eeg"].data
    assert np.array_equal(_read(root, subjects=[1])[6].streams["eeg"].data, original)


def test_missing_eye_subject_and_eye_dir(seed_root, tmp_path):
    recordings = _read(seed_root, raw=False)
    assert all("eye" in r.missing and "eye" not in r.features for r in recordings
               if r.subject == 2)
    assert all("eye" in r.features and not r.missing for r in recordings if r.subject == 1)
    root = tmp_path / "seed"
    root.mkdir()
    (root / "ExtractedFeatures").symlink_to(seed_root / "ExtractedFeatures")
    (root / "eyes").symlink_to(seed_root / "Eye_movement_features")
    moved = _read(root, subjects=[1], raw=False, eye_dir="eyes")
    assert all("eye" in r.features for r in moved)
    assert all("eye" in r.missing for r in _read(root, subjects=[1], raw=False))


def test_subject_selection_and_inner_folder(seed_root):
    recordings = _read(seed_root / "Preprocessed_EEG", subjects=[2])
    assert {r.subject for r in recordings} == {2} and len(recordings) == 45


def test_stray_files_are_ignored(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG")
    for folder in ("ExtractedFeatures", "Preprocessed_EEG"):
        (root / folder / "notes.txt").write_text("not a subject")
        (root / folder / "1_2013.mat").write_text("not a subject either")
    assert len(_read(root, subjects=[1])) == 45


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetFormatError, match="ExtractedFeatures"):
        _read(tmp_path)


def test_missing_subject_file(seed_root):
    with pytest.raises(DatasetFormatError, match="7_<yyyymmdd>.mat"):
        _read(seed_root, subjects=[7])


def test_truncated_file(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "Preprocessed_EEG")
    path = root / "Preprocessed_EEG" / FIRST
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*truncated"):
        _read(root, subjects=[1])


@pytest.mark.parametrize("folder, edit, pattern", [
    ("ExtractedFeatures", lambda c: c.pop("de_LDS3"), "variable 'de_LDS3' missing"),
    ("ExtractedFeatures", lambda c: c.update(de_LDS3=np.zeros((61, 2, 5))),
     r"'de_LDS3' has shape \(61, 2, 5\)"),
    ("Preprocessed_EEG", lambda c: c.pop("djc_eeg5"), r"trial\(s\) \[5\] missing"),
    ("Preprocessed_EEG", lambda c: c.update(djc_eeg5=np.zeros((32, 401))),
     "'djc_eeg5' has shape"),
    ("Preprocessed_EEG", lambda c: c.update(xx_eeg5=c["djc_eeg5"]), "both hold trial 5"),
])
def test_bad_variables(seed_root, tmp_path, folder, edit, pattern):
    root = _copy(seed_root, tmp_path, folder)
    edit_mat(root / folder / FIRST, edit)
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*{pattern}"):
        _read(root, subjects=[1])


def test_label_file(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "ExtractedFeatures", "Preprocessed_EEG")
    labels = root / "ExtractedFeatures" / "label.mat"
    edit_mat(labels, lambda c: c.update(label=np.full((1, 15), 2)))
    with pytest.raises(DatasetFormatError, match="label.mat.*'label' holds"):
        _read(root, subjects=[1])
    for folder in ("ExtractedFeatures", "Preprocessed_EEG"):
        (root / folder / "label.mat").unlink()
    with pytest.raises(DatasetFormatError, match="label.mat.*not found"):
        _read(root, subjects=[1])


def test_nan_raises_or_marks_missing(seed_root, tmp_path):
    root = _copy(seed_root, tmp_path, "Eye_movement_features", "Preprocessed_EEG")

    def poke(name):
        def edit(content):
            content[name][3, 1] = np.nan
        return edit
    edit_mat(root / "Eye_movement_features" / FIRST, poke("eye_2"))
    edit_mat(root / "Preprocessed_EEG" / FIRST, poke("djc_eeg4"))
    with pytest.raises(DatasetFormatError, match=f"{FIRST}.*'eye_2' \\(eye\\) contains NaN"):
        _read(root, subjects=[1], raw=False)
    recordings = _read(root, subjects=[1], nan_policy="mark_missing")[:4]
    assert recordings[1].missing == {"eye"} and "eye" in recordings[0].features
    assert recordings[3].missing == {"eeg"} and "eeg" in recordings[2].streams
